"""The README's table of what a helper brings along when copied into another project is true.

Each module in the table is copied with the modules the table names, and nothing else,
into a package of another name, in an interpreter where ``helpers`` cannot be imported:
it must import, and its docstring examples must pass. The table's third-party packages
must be the ones those files import.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from test_environment import imported_packages

ROOT = Path(__file__).resolve().parents[1]


def readme_table() -> dict[str, tuple[list[str], list[str], set[str]]]:
    """module -> (modules it brings along, more that its examples use, third-party pip names),
    from README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Using a helper in your own project"):text.index("## Troubleshooting")]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(\w+)\.py`", cells[0]) if len(cells) == 3 else None
        if match:
            brings, _, examples = cells[1].partition("(")
            packages = set() if cells[2] == "none" else {p.strip() for p in cells[2].split(",")}
            rows[match.group(1)] = (re.findall(r"`(\w+)\.py`", brings),
                                    re.findall(r"`([\w/]+)\.py`", examples), packages)
    return rows


TABLE = readme_table()


def test_the_readme_lists_the_light_modules():
    assert {"labels", "dataio", "metrics", "prompt", "render", "baseline", "plots", "teacher"} <= set(TABLE)


def third_party(path: Path) -> set[str]:
    """The pip names of the packages ``path`` imports (its imports read as test_environment reads them)."""
    names = imported_packages(path) - set(sys.stdlib_module_names) - {"__future__", "helpers"}
    found = packages_distributions()
    return {found[name][0].lower() for name in names}


@pytest.mark.parametrize("module", sorted(TABLE))
def test_a_module_copied_with_what_the_readme_says_works_on_its_own(tmp_path, module):
    brings, examples, packages = TABLE[module]
    files = [f"{name}.py" for name in [module, *brings]]
    assert set().union(*(third_party(ROOT / "helpers" / f) for f in files)) == packages
    package = tmp_path / "mypkg"
    (package / "local").mkdir(parents=True)
    for name in ("__init__.py", "local/__init__.py"):
        (package / name).write_text("")
    for name in [*files, *(f"{name}.py" for name in examples)]:
        text = (ROOT / "helpers" / name).read_text(encoding="utf-8")
        (package / name).write_text(text.replace("helpers.", "mypkg."), encoding="utf-8")
    if "local/model" in examples:  # the tiny model's tokenizer file goes with it
        shutil.copy(ROOT / "helpers" / "local" / "tokenizer.json", package / "local" / "tokenizer.json")
    code = ("import doctest, importlib, sys\n"
            "sys.modules['helpers'] = None  # the original cannot stand in for a missing copy\n"
            f"module = importlib.import_module('mypkg.{module}')\n"
            "result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)\n"
            "print(result)\n"
            "sys.exit(1 if result.failed else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path),
                               "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
