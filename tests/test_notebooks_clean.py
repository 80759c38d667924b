"""Notebooks are committed clean: valid, without outputs, short, prose first.

Outputs in a committed notebook go stale, bloat diffs, and can carry secrets (an API key
echoed by mistake, a password widget's state). ``pre-commit`` with nbstripout strips them
for contributors; this test catches whatever slips past it. ``make run`` writes the
executed copies under ``build/notebooks/`` instead.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MAX_CELLS = 25
"""One idea per cell and about 25 cells at most: longer notebooks get split or moved into helpers."""

PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_there_are_notebooks():
    assert PATHS, f"no notebooks found in {NOTEBOOKS}"


@pytest.fixture(params=PATHS, ids=[p.name for p in PATHS])
def notebook(request) -> tuple[Path, dict]:
    path = request.param
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        pytest.fail(f"{path.name} is not valid JSON: {e}")
    return path, data


def test_is_a_valid_notebook(notebook):
    path, data = notebook
    nbformat.validate(nbformat.from_dict(data))
    assert data.get("nbformat") == 4, f"{path.name}: nbformat {data.get('nbformat')}, expected 4"


def test_has_no_outputs_or_execution_counts(notebook):
    path, data = notebook
    dirty = [
        i
        for i, cell in enumerate(data["cells"], start=1)
        if cell["cell_type"] == "code"
        and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} have outputs or execution counts; strip them (nbstripout {path.name})"
    )


def test_has_no_saved_widget_state(notebook):
    # A password widget's value would be saved here: never commit widget state.
    path, data = notebook
    assert "widgets" not in data.get("metadata", {}), (
        f"{path.name}: saved widget state in metadata; strip it"
    )


def test_is_short_and_starts_with_prose(notebook):
    path, data = notebook
    cells = data["cells"]
    assert cells, f"{path.name} is empty"
    assert len(cells) <= MAX_CELLS, (
        f"{path.name} has {len(cells)} cells, at most {MAX_CELLS}: move logic into helpers"
    )
    assert cells[0]["cell_type"] == "markdown", (
        f"{path.name}: the first cell must be markdown (prose first)"
    )


def test_runs_in_the_default_python3_kernel(notebook):
    # nbmake and make run start the kernel named here; a private kernel name fails in CI.
    path, data = notebook
    kernel = data.get("metadata", {}).get("kernelspec", {}).get("name", "python3")
    assert kernel == "python3", (
        f"{path.name}: kernelspec {kernel!r}; use python3 (the course's .venv)"
    )


def test_the_contributors_strip_hook_leaves_a_committed_notebook_as_it_is(tmp_path):
    """The pre-commit hook's nbstripout, run on the committed notebooks, changes nothing: the
    builders and the hook agree (without --keep-id it renumbered every cell of every notebook).
    Run on an executed notebook, it strips the outputs, with .venv's tool or the one on PATH."""
    import shlex
    import subprocess

    import yaml

    root = NOTEBOOKS.parent
    hooks = yaml.safe_load((root / ".pre-commit-config.yaml").read_text(encoding="utf-8"))["repos"][0]["hooks"]
    command = shlex.split(next(h["entry"] for h in hooks if h["id"] == "nbstripout"))
    copies = []
    for path in PATHS:
        copy = tmp_path / path.name
        copy.write_bytes(path.read_bytes())
        copies.append(copy)
    # as pre-commit runs it: from the repository (.venv's tool), and where there is no .venv (a
    # conda environment: the tool on PATH)
    import os
    import sys

    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    executed = tmp_path / "executed" / PATHS[0].name  # and it does strip: an output and a count go
    executed.parent.mkdir()
    nb = nbformat.read(PATHS[0], as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.execution_count = 1
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="printed while running\n")]
    nbformat.write(nb, executed)
    for cwd in (root, tmp_path):
        subprocess.run([*command, *map(str, copies)], check=True, timeout=120, cwd=cwd, env={**os.environ, "PATH": path})
        changed = [c.name for c, p in zip(copies, PATHS, strict=True) if c.read_bytes() != p.read_bytes()]
        assert not changed, f"the strip hook rewrites {changed} (run from {cwd})"
        nbformat.write(nb, executed)
        subprocess.run([*command, str(executed)], check=True, timeout=120, cwd=cwd, env={**os.environ, "PATH": path})
        assert "printed while running" not in executed.read_text(encoding="utf-8"), cwd


def _code_cells(data: dict) -> list[tuple[int, ast.Module]]:
    """Each code cell's number (from 1) and syntax tree, IPython's % and ! lines left out."""
    cells = []
    for number, cell in enumerate(data["cells"], start=1):
        if cell["cell_type"] == "code":
            lines = "".join(cell["source"]).splitlines()
            cells.append((number, ast.parse("\n".join(x for x in lines if not x.lstrip().startswith(("%", "!"))))))
    return cells


def _bindings(tree: ast.Module) -> list[tuple[str, ast.expr]]:
    """``name = value`` at a cell's top level, tuples unpacked: (name, value) pairs."""
    pairs = []
    for node in tree.body:
        for target in node.targets if isinstance(node, ast.Assign) else []:
            if isinstance(target, ast.Name):
                pairs.append((target.id, node.value))
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs += [(t.id, v) for t, v in zip(target.elts, node.value.elts, strict=True) if isinstance(t, ast.Name)]
    return pairs


def _filled(tree: ast.Module) -> set[str]:
    """Names whose items a cell sets: ``name[key] = ...`` or ``name.update(...)``."""
    names = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        names |= {t.value.id for t in targets if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name)}
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update"
                and isinstance(node.func.value, ast.Name)):
            names.add(node.func.value.id)
    return names


def _is_empty(value: ast.expr) -> bool:
    """``{}``, ``[]``, ``dict()``, ``list()`` or ``set()``."""
    if isinstance(value, ast.Dict | ast.List | ast.Set):
        return not (value.keys if isinstance(value, ast.Dict) else value.elts)
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in {"dict", "list", "set"}
            and not value.args and not value.keywords)


def test_a_collection_filled_by_several_cells_is_created_empty(notebook):
    """Run a cell again and nothing another cell added is lost: a dict that later cells add
    to (``predictions["baseline"] = ...``) is created empty, and the cells that fill it set
    their own keys. Notebook 04's predictions cell once rebuilt the dict, so running it again
    (after retraining the student) dropped the baseline's answers, and three later cells
    failed with KeyError until the baseline's cell ran again."""
    path, data = notebook
    cells = _code_cells(data)
    fillers: dict[str, set[int]] = {}
    for number, tree in cells:
        for name in _filled(tree):
            fillers.setdefault(name, set()).add(number)
    rebuilt = [
        f"cell {number} builds {name!r}, which cell(s) {sorted(fillers[name] - {number})} add to"
        for number, tree in cells
        for name, value in _bindings(tree)
        if fillers.get(name, set()) - {number} and not _is_empty(value)
    ]
    assert not rebuilt, f"{path.name}: " + "; ".join(rebuilt) + ": create it empty and fill it by key"
