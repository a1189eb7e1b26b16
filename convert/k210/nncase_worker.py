"""Runs inside the K210 toolchain (CPython 3.8-3.10 with nncase 1.9), never in the main venv.

``convert/k210_compile.py`` copies this file into a work folder with a job file and runs
``.k210/python nncase_worker.py job.json``. It imports only nncase, numpy and the standard library, and
writes its results next to the job: ``result.json`` plus the files the job names.

Jobs:
    {"action": "compile", "tflite": ..., "kmodel": ..., "calibration": "calib.npy", "options": {...}}
        A FLOAT TFLite (nncase 1.9 crashes on full-integer ones) -> uint8 PTQ with the calibration
        tensors (already in the kmodel's input dtype and layout) -> kmodel bytes.
    {"action": "simulate", "kmodel": ..., "inputs": "inputs.npy", "outputs": "outputs.npy"}
        Runs every input through nncase's K210 simulator (KPU ops included); stacks the outputs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nncase
import numpy as np

COMPILE_OPTION_NAMES = ("target", "quant_type", "w_quant_type", "preprocess", "input_type", "input_range", "mean",
                        "std", "swapRB", "input_layout", "input_shape", "output_layout", "output_type", "dump_dir",
                        "dump_ir", "dump_asm")


def compile_job(job: dict, folder: Path) -> dict:
    options = nncase.CompileOptions()
    for name in COMPILE_OPTION_NAMES:
        if name in job["options"]:
            setattr(options, name, job["options"][name])
    compiler = nncase.Compiler(options)
    started = time.perf_counter()
    compiler.import_tflite((folder / job["tflite"]).read_bytes(), nncase.ImportOptions())
    calibration = np.load(folder / job["calibration"])
    ptq = nncase.PTQTensorOptions()
    ptq.calibrate_method = job.get("calibrate_method", "no_clip")
    ptq.samples_count = int(calibration.shape[0])
    ptq.set_tensor_data(np.ascontiguousarray(calibration).tobytes())
    compiler.use_ptq(ptq)
    compiler.compile()
    kmodel = compiler.gencode_tobytes()
    (folder / job["kmodel"]).write_bytes(kmodel)
    return {"kmodel_bytes": len(kmodel), "compile_s": round(time.perf_counter() - started, 2),
            "calibration_samples": int(calibration.shape[0])}


def simulate_job(job: dict, folder: Path) -> dict:
    simulator = nncase.Simulator()
    simulator.load_model((folder / job["kmodel"]).read_bytes())
    inputs = np.load(folder / job["inputs"])
    outputs = []
    started = time.perf_counter()
    for sample in inputs:
        simulator.set_input_tensor(0, nncase.RuntimeTensor.from_numpy(np.ascontiguousarray(sample[None])))
        simulator.run()
        outputs.append(simulator.get_output_tensor(0).to_numpy().reshape(-1))
    np.save(folder / job["outputs"], np.stack(outputs).astype(np.float32))
    return {"samples": len(outputs), "simulate_s": round(time.perf_counter() - started, 2)}


ACTIONS = {"compile": compile_job, "simulate": simulate_job}


def main(argv: list) -> int:
    job_path = Path(argv[1]).resolve()
    job = json.loads(job_path.read_text())
    result = ACTIONS[job["action"]](job, job_path.parent)
    result["nncase_version"] = getattr(nncase, "__version__", "1.9.0.20230322")
    (job_path.parent / "result.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
