"""runtime/ is what goes onto the device: it must not pull in TensorFlow or anything from convert/."""

from __future__ import annotations

import subprocess
import sys

from tests import ROOT


def test_runtime_imports_neither_tensorflow_nor_convert():
    code = (
        "import sys\n"
        "import pkgutil, importlib, runtime\n"
        "for module in pkgutil.iter_modules(runtime.__path__):\n"
        "    if module.name != '__main__':\n"
        "        importlib.import_module('runtime.' + module.name)\n"
        "import runtime.__main__\n"
        "runtime.interpreter.interpreter_backend()\n"  # resolves the interpreter package too
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'convert', 'calibration'))\n"
        "print(runtime.interpreter.interpreter_backend())\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
    assert done.stdout.strip() == "ai_edge_litert"
