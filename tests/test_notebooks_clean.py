"""Notebooks are committed clean: valid, without outputs, short, prose first.

Outputs in a committed notebook go stale, bloat diffs, and can carry secrets (an API key
echoed by mistake, a password widget's state). ``pre-commit`` with nbstripout strips them
for contributors; this test catches whatever slips past it. ``make run`` writes the
executed copies under ``build/notebooks/`` instead.
"""

from __future__ import annotations

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
