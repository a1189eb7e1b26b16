"""The README's bad-input table names the tests that keep each row true: every one of them must exist."""

from __future__ import annotations

import ast
import re

from tests import ROOT

_SECTION = "## Bad input: what happens"


def _test_names(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_test_the_bad_input_table_names_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(_SECTION, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| input")]
    assert len(rows) >= 15
    for row in rows:
        cited = re.findall(r"`(?:((?:\w+/)?test_\w+\.py))?::(test_\w+)`", row)
        assert cited, f"row names no test: {row[:80]}"
        module = None
        for file_name, test in cited:
            module = file_name or module  # "::name" continues the file named before it
            assert test in _test_names(ROOT / "tests" / module), f"{module}::{test} named in README.md is missing"
