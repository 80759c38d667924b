"""Run the whole course headless, in order, and summarise it: the driver behind ``make run``.

1. The pipeline, ``python -m helpers run --out build/run/<backend>``, when the package has a
   command line (``helpers/__main__.py``): it writes ``report.json`` there (:func:`pipeline_folder`).
2. Every ``notebooks/NN_*.ipynb`` in order, in the ``python3`` kernel of this interpreter
   (the course's ``.venv``), with a time limit per cell; the executed copies go to
   ``build/notebooks/``, each kernel's own log to ``build/logs/``. The kernels see
   ``PD_BUILD`` (the build folder, absolute) and save figures under ``$PD_BUILD/figures``.
3. A short summary of that ``report.json``: accuracies, agreement, prompt tokens saved.

The backend is whatever ``helpers.connect()`` picks (``PD_BACKEND``, else Tinker when
``TINKER_API_KEY`` is set, else offline). On failure it exits non-zero with one line naming
the step, or the notebook and cell, that failed.

Example
-------
    .venv/bin/python scripts/run_course.py            # what make run does
    .venv/bin/python scripts/run_course.py --no-pipeline --build /tmp/course
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
COURSE = [
    "00_setup",
    "01_teacher_prompt",
    "02_generate_data",
    "03_train_student",
    "04_evaluate",
    "05_advanced",
]
"""The course's notebooks in order; the ones not written yet are listed, not run."""
CELL_TIMEOUT = 900


class CourseError(RuntimeError):
    """A step of the course failed; the message is the one line to show."""


def one_line(text: object, limit: int = 200) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def pipeline_setting() -> tuple[str, bool]:
    """(folder, quick), read once from the environment: the folder is ``local`` or ``tinker``,
    with ``-quick`` when ``PD_QUICK=1``, under ``build/run/``; one per backend and size, as
    the notebooks' work folders are, so that a second ``make run`` with a key or ``PD_QUICK``
    never meets another run's files. A bad ``PD_BACKEND`` or ``PD_QUICK`` raises
    :class:`CourseError` naming the setting."""
    from helpers.backend import choose_backend
    from helpers.course import quick_setting, run_name
    from helpers.dataio import DataError

    try:
        backend, quick = choose_backend()[0], bool(quick_setting())
    except DataError as e:
        raise CourseError(str(e)) from None
    return run_name(backend, quick), quick


def run_pipeline(out: Path, quick: bool = False) -> None:
    """``python -m helpers run --out OUT`` in this interpreter, its output streamed as it comes."""
    if importlib.util.find_spec("helpers.__main__") is None:
        print("pipeline: skipped (the helpers package has no command line yet)")
        return
    command = [sys.executable, "-m", "helpers", "run", "--out", str(out)]
    if quick:  # PD_QUICK=1: the 1,200-query sample, for a cheap first run on Tinker
        command.append("--quick")
    print(f"pipeline: {' '.join(['python', *command[1:]])}", flush=True)
    start = time.monotonic()
    code = subprocess.call(command, cwd=ROOT)
    if code != 0:
        raise CourseError(
            f"the pipeline 'python -m helpers run --out {out}' failed with exit code {code} (its reason is above)"
        )
    print(f"pipeline: done in {time.monotonic() - start:.0f} s", flush=True)


def course_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """``NN_*.ipynb`` in ``folder``, in course order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if p.is_file())


def execute_notebook(path: Path, out_dir: Path, timeout: int = CELL_TIMEOUT) -> float:
    """Execute ``path`` from its own folder, write the executed copy to ``out_dir``; return seconds.

    Raises :class:`CourseError` naming the notebook and cell when a cell fails, times out or
    kills the kernel; the copy written so far (with the traceback) is kept for reading.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:  # noqa: BLE001 (not JSON, not a notebook, unreadable: one line naming it)
        raise CourseError(f"{path.name} could not be read as a notebook: {one_line(e)}") from None
    current = {"index": None}

    def on_cell_start(cell, cell_index, **_):
        current["index"] = cell_index

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",  # jupyter_client starts it with this interpreter (the .venv)
        resources={"metadata": {"path": str(path.parent)}},  # cwd = notebooks/, as in JupyterLab
        on_cell_start=on_cell_start,
        store_widget_state=False,  # widget state may hold what a learner typed; never keep it
    )
    out = out_dir / path.name
    # The kernel's own stderr (transport warnings, tracebacks at shutdown) goes to a log, not
    # the console; what the cells print is in the executed copy.
    log = out_dir.parent / "logs" / f"{path.stem}.kernel.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        with open(log, "wb") as kernel_stderr:
            client.execute(stderr=kernel_stderr)
    except CellExecutionError as e:
        reason = f"{e.ename}: {one_line(e.evalue)}" if getattr(e, "ename", None) else one_line(e)
        raise CourseError(
            f"{_where(path, current['index'])} failed: {reason}; the executed copy is {_rel(out)}"
        ) from None
    except CellTimeoutError:
        raise CourseError(
            f"{_where(path, current['index'])} ran longer than {timeout} s; the executed copy is {_rel(out)}"
        ) from None
    except DeadKernelError as e:
        raise CourseError(
            f"{_where(path, current['index'])} killed the kernel ({one_line(e)}); out of memory? see {_rel(log)}"
        ) from None
    except Exception as e:  # the kernel could not start, the notebook could not be read, ...
        raise CourseError(
            f"{_where(path, current['index'])}: {e.__class__.__name__}: {one_line(e)}"
        ) from None
    finally:
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out)
    return time.monotonic() - start


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _where(path: Path, index: int | None) -> str:
    name = _rel(path)
    return f"{name}, cell {index + 1}" if index is not None else name


def _number(value, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    return f"{value:.{digits}f}"


def summary(report: dict) -> list[str]:
    """The lines ``make run`` prints from ``report.json``."""
    lines = [f"Summary (backend: {report.get('backend', 'unknown')})"]
    for key, label in [
        ("teacher_accuracy", "teacher accuracy (with the prompt)"),
        ("student_accuracy", "student accuracy (without it)"),
        ("baseline_accuracy", "classic baseline accuracy"),
        ("agreement", "student-teacher agreement"),
    ]:
        lines.append(f"  {label:36} {_number(report.get(key))}")
    teacher, student = report.get("teacher_prompt_tokens"), report.get("student_prompt_tokens")
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (teacher, student)):
        saved = teacher - student
        share = f" ({saved / teacher:.0%} of the teacher's)" if teacher else ""
        lines.append(
            f"  {'prompt tokens per query':36} teacher {teacher:,.1f}, student {student:,.1f}, saved {saved:,.1f}{share}"
        )
    else:
        lines.append(f"  {'prompt tokens per query':36} n/a")
    paid = report.get("payback") or {}
    if isinstance(paid.get("break_even_queries"), int):
        lines.append(f"  {'the student pays the run back after':36} {paid['break_even_queries']:,} queries "
                     f"(one-off ${paid['one_off_usd']:,.2f}; {paid.get('prices_note', '')})")
    if report.get("offline"):
        lines.append(
            "  Offline run: these numbers come from the stand-in teacher (the prompt's rules on top of "
            "a language detector) and the tiny local model, not from LLMs."
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--build", type=Path, default=ROOT / "build", help="output folder (default: build/)"
    )
    parser.add_argument("--no-pipeline", action="store_true", help="skip 'python -m helpers run'")
    parser.add_argument(
        "--timeout", type=int, default=CELL_TIMEOUT, help="seconds per notebook cell (default: 900)"
    )
    args = parser.parse_args(argv)

    build = args.build.resolve()
    os.environ["PD_BUILD"] = str(build)  # inherited by the pipeline and every notebook kernel
    (build / "figures").mkdir(parents=True, exist_ok=True)
    try:
        folder, quick = pipeline_setting()
        run_dir = build / "run" / folder
        if not args.no_pipeline:
            run_pipeline(run_dir, quick=quick)
        notebooks = course_notebooks()
        if not notebooks:
            raise CourseError(f"no notebooks NN_*.ipynb in {_rel(NOTEBOOKS)}")
        for path in notebooks:
            print(f"notebook: {path.name} ...", end=" ", flush=True)
            seconds = execute_notebook(path, build / "notebooks", args.timeout)
            print(f"done in {seconds:.0f} s", flush=True)
    except CourseError as e:
        print(file=sys.stdout, flush=True)
        print(f"make run: {e}", file=sys.stderr)
        return 1

    missing = [name for name in COURSE if not (NOTEBOOKS / f"{name}.ipynb").exists()]
    if missing:
        print(f"not written yet: {', '.join(missing)}")
    print(f"executed notebooks: {_rel(build / 'notebooks')}/   figures: {_rel(build / 'figures')}/")

    report_path = run_dir / "report.json"
    if report_path.exists():
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            print(f"make run: cannot read {_rel(report_path)}: {one_line(e)}", file=sys.stderr)
            return 1
        print("\n".join(summary(report)))
    else:
        print(f"summary: none yet ({_rel(report_path)} is written by 'python -m helpers run')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
