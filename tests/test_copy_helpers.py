"""The README's recipe for copying a helper into another project works when followed literally.

- Each row of the table of what a module brings along names exactly the modules its
  relative imports reach, lazy ones inside functions included, followed to the end.
- Each module in the table, copied with the modules its row names and nothing else into
  a package of another name, in an interpreter where ``helpers`` cannot be imported,
  imports and passes its docstring examples; the row's third-party packages are the ones
  those files import.
- The test files the README says need nothing but their modules pass in such a copy.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from test_environment import imported_packages

ROOT = Path(__file__).resolve().parents[1]
HELPERS = ROOT / "helpers"


def readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text[text.index("## Using a helper in your own project"):text.index("## Troubleshooting")]


def readme_table() -> dict[str, tuple[list[str], list[str], set[str]]]:
    """module -> (modules it brings along, more that its examples use, third-party pip names),
    from README.md; modules are paths under ``helpers/`` without ``.py`` (``local/clients``)."""
    rows = {}
    for line in readme_section().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(\w+)\.py`", cells[0]) if len(cells) == 3 else None
        if match:
            brings, _, examples = cells[1].partition("(")
            packages = set() if cells[2] == "none" else {p.strip() for p in cells[2].split(",")}
            rows[match.group(1)] = (re.findall(r"`([\w/]+)\.py`", brings),
                                    re.findall(r"`([\w/]+)\.py`", examples), packages)
    return rows


TABLE = readme_table()


def test_the_readme_lists_the_light_modules_and_the_two_steps():
    assert {"labels", "dataio", "metrics", "prompt", "render", "baseline", "plots", "teacher",
            "generate", "train"} <= set(TABLE)


def module_file(parts: list[str]) -> str | None:
    """``["local", "clients"]`` -> ``"local/clients"``, ``["local"]`` -> ``"local/__init__"``;
    None if there is no such module in ``helpers/``."""
    path = HELPERS.joinpath(*parts)
    if path.with_suffix(".py").is_file():
        return "/".join(parts)
    if (path / "__init__.py").is_file():
        return "/".join([*parts, "__init__"])
    return None


def relative_imports(name: str) -> set[str]:
    """The modules of ``helpers/`` that ``helpers/<name>.py`` imports relatively, at any depth
    (lazy ones too), with the ``__init__`` of each subpackage on the way (the top one is the
    copying project's own)."""
    package = name.split("/")[:-1]
    found = set()
    for node in ast.walk(ast.parse((HELPERS / f"{name}.py").read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.ImportFrom) and node.level):
            continue
        base = package[:len(package) - node.level + 1]
        target = [*base, *node.module.split(".")] if node.module else base
        for depth in range(len(base) + 1, len(target) + 1):
            found.add(module_file(target[:depth]))
        submodules = {module_file([*target, alias.name]) for alias in node.names} - {None}
        found |= submodules
        if not node.module and not submodules:  # from . import name: the package's own __init__
            found.add(module_file(target))
    assert None not in found, f"{name}.py imports a module helpers/ does not have"
    return found


def test_no_module_imports_helpers_by_its_name():
    """Only relative imports are followed above; a ``from helpers.x import y`` would be renamed
    with the copy and fail only when reached, so none may exist (docstring examples aside)."""
    found = []
    for path in sorted(HELPERS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and not node.level and node.module else []
            found += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names if n.split(".")[0] == "helpers"]
    assert not found, f"import helpers relatively instead: {', '.join(found)}"


def brought_along(module: str) -> set[str]:
    """Everything ``module`` imports relatively, followed to the end."""
    seen, todo = set(), [module]
    while todo:
        for name in relative_imports(todo.pop()) - seen - {module}:
            seen.add(name)
            todo.append(name)
    return seen


def test_relative_imports_are_followed_into_subpackages_and_up():
    assert relative_imports("local/__init__") == {"local/clients", "local/model"}
    assert {"dataio", "local/model", "teacher"} <= relative_imports("local/clients")  # ..dataio, lazy ..teacher
    assert {"local/__init__", "local/clients", "local/model", "teacher"} <= brought_along("backend")


@pytest.mark.parametrize("module", sorted(TABLE))
def test_the_readme_names_everything_a_module_imports(module):
    """A lazy import that the examples never reach would not fail the copy below: this reads them all."""
    assert set(TABLE[module][0]) == brought_along(module)


def third_party(path: Path) -> set[str]:
    """The pip names of the packages ``path`` imports (its imports read as test_environment reads them)."""
    names = imported_packages(path) - set(sys.stdlib_module_names) - {"__future__", "helpers"}
    found = packages_distributions()
    return {found[name][0].lower() for name in names}


def copy_into(package: Path, modules: list[str]) -> None:
    """``helpers/<module>.py`` for each module into ``package``, renamed (``local/model.py``
    with its ``tokenizer.json``); ``__init__.py`` files not among them are empty."""
    (package / "local").mkdir(parents=True, exist_ok=True)
    for name in ("__init__.py", "local/__init__.py"):
        if not (package / name).exists():
            (package / name).write_text("")
    for name in modules:
        text = (HELPERS / f"{name}.py").read_text(encoding="utf-8")
        (package / f"{name}.py").write_text(re.sub(r"\bhelpers\b", package.name, text), encoding="utf-8")
    if "local/model" in modules:  # the tiny model's tokenizer file goes with it
        shutil.copy(HELPERS / "local" / "tokenizer.json", package / "local" / "tokenizer.json")


def run_without_helpers(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter that finds ``cwd``'s packages and cannot import ``helpers``."""
    code = "import sys\nsys.modules['helpers'] = None  # the original cannot stand in for a missing copy\n" + code
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd), "HOME": str(cwd),
                               "HF_HUB_OFFLINE": "1"})


@pytest.mark.parametrize("module", sorted(TABLE))
def test_a_module_copied_with_what_the_readme_says_works_on_its_own(tmp_path, module):
    brings, examples, packages = TABLE[module]
    assert set().union(*(third_party(HELPERS / f"{name}.py") for name in [module, *brings])) == packages
    copy_into(tmp_path / "mypkg", [*examples, module, *brings])
    code = ("import doctest, importlib\n"
            f"module = importlib.import_module('mypkg.{module}')\n"
            "result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)\n"
            "print(result)\n"
            "sys.exit(1 if result.failed else 0)\n")
    proc = run_without_helpers(code, tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def self_contained_tests() -> list[str]:
    """The test files README step 3 says need nothing but the modules they are named after."""
    sentence = re.search(r"((?:`test_\w+\.py`(?:,\s+|\s+and\s+)?)+)\s+need nothing but\s+the modules they are "
                         r"named after", readme_section())
    assert sentence, "README step 3 no longer names the tests that need nothing but their modules"
    return re.findall(r"`(test_\w+)\.py`", sentence.group(1))


def test_the_readme_names_self_contained_tests():
    assert {"test_dataio", "test_metrics", "test_labels_prompt"} <= set(self_contained_tests())


@pytest.mark.parametrize("test_file", self_contained_tests())
def test_a_test_file_the_readme_calls_self_contained_passes_in_a_copy(tmp_path, test_file):
    """``test_labels_prompt.py`` is the tests of ``labels.py`` and ``prompt.py``: those two are
    copied with what their rows bring along, and the test file, renamed, runs with pytest."""
    modules = test_file.removeprefix("test_").split("_")
    assert set(modules) <= set(TABLE), f"{test_file}.py is not named after modules of the README's table"
    copy_into(tmp_path / "mypkg", sorted({m for module in modules for m in [module, *TABLE[module][0]]}))
    text = (ROOT / "tests" / f"{test_file}.py").read_text(encoding="utf-8")
    (tmp_path / f"{test_file}.py").write_text(re.sub(r"\bhelpers\b", "mypkg", text), encoding="utf-8")
    code = f"import pytest\nsys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '{test_file}.py']))\n"
    proc = run_without_helpers(code, tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
