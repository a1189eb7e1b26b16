"""The README and firmware_notes stay true to the code: the bad-input table's tests exist, and every `make`
target, make variable, `python -m` module and flag they write exists."""

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


_DOCS = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "firmware_notes").glob("*.md"))]
_PROSE_MAKE_WORDS = {"variable", "variables"}  # "make variables" in prose, not a target


def _doc_text() -> dict[str, str]:
    return {name: (ROOT / name).read_text(encoding="utf-8") for name in _DOCS}


def test_every_make_target_the_docs_name_exists():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, flags=re.M))
    for name, text in _doc_text().items():
        for target in set(re.findall(r"\bmake ([a-z][a-z0-9-]*)", text)) - _PROSE_MAKE_WORDS:
            assert target in targets, f"{name} names `make {target}`, which the Makefile does not have"
        for command in re.findall(r"\bmake [a-z][a-z0-9-]*((?: [A-Z][A-Z0-9_]*=\S*)+)", text):
            for variable in re.findall(r"([A-Z][A-Z0-9_]*)=", command):
                assert f"$({variable})" in makefile, f"{name}: make variable {variable}= is not read by the Makefile"


def test_every_python_module_and_flag_the_docs_name_exists():
    """`python -m MODULE --flag ...` in the README and firmware_notes: the module is ours (or the standard
    library's) and every flag written after it is one its argument parser defines."""
    import importlib.util

    commands, sources_of = 0, {}
    for name, text in _doc_text().items():
        for module, rest in re.findall(r"python3? -m ([A-Za-z_][\w.]*)([^`\n]*)", text):
            spec = importlib.util.find_spec(module)
            assert spec is not None, f"{name}: `python -m {module}` is not a module"
            if not spec.origin or not spec.origin.startswith(str(ROOT)):
                continue  # venv, pip, pytest: not ours
            package = module.split(".")[0]
            if package not in sources_of:  # read each package once, not once per command
                sources_of[package] = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / package).rglob("*.py"))
            sources = sources_of[package]
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest.split("#", 1)[0]):
                assert f'"{flag}"' in sources or flag == "--help", f"{name}: `python -m {module} ... {flag}`: no such flag"
            commands += 1
    assert commands >= 20
