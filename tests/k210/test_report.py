"""convert/k210/report.py: the sampled agreement's interval, and a report only for the kmodel it describes."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(("agreeing", "n", "expected"), [
    (97, 100, (0.9155, 0.9897)),  # Wilson score interval, z = 1.96 (the textbook values)
    (0, 10, (0.0, 0.2775)),
    (100, 100, (0.9630, 1.0)),
    (486, 500, (0.9536, 0.9832)),  # issue 4's seed-1 sample: 98% inside, so that sample did not settle the goal
])
def test_sampled_agreement_comes_with_its_95_percent_interval(agreeing, n, expected):
    from convert.k210.report import wilson_interval

    assert wilson_interval(agreeing, n) == pytest.approx(expected, abs=1e-4)


def test_kmodel_report_needs_the_kmodel_its_report_describes(tmp_path, capsys):
    from convert.k210.report import main as report_main
    from convert.schema import K210_REPORT_JSON as REPORT_JSON
    from convert.schema import KMODEL_FILE

    assert report_main(["--artifacts", str(tmp_path)]) == 2
    assert "run `make kmodel` first" in capsys.readouterr().err
    (tmp_path / KMODEL_FILE).write_bytes(b"LDMK\x05\x00\x00\x00 another build")
    from convert.schema import KmodelRecord

    record = KmodelRecord(file=KMODEL_FILE, bytes=10, sha256="0" * 64, version=5, nncase_memory_bytes={},
                          compile_s=1.0, calibration_images=1, calibrate_method="no_clip", toolchain="venv",
                          input={"layout": "NCHW"}, output={})
    (tmp_path / REPORT_JSON).write_text(json.dumps({"kmodel": record.to_dict()}))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert report_main(["--artifacts", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not the kmodel k210_report.json describes" in err[0] and "rerun `make kmodel`" in err[0]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing rewritten
