"""scripts/run_course.py, the driver behind ``make run``: order, failures, summary."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


@pytest.fixture(scope="module")
def run_course(load_script):
    return load_script("run_course")


REPORT = {
    "teacher_accuracy": 0.93,
    "student_accuracy": 0.871,
    "baseline_accuracy": 0.8,
    "agreement": 0.9,
    "teacher_prompt_tokens": 3120.6,  # means over the gold set
    "student_prompt_tokens": 50.6033,
    "backend": "local",
    "offline": True,
    "payback": {"break_even_queries": 15432, "one_off_usd": 9.7654, "prices_note": "EXAMPLE prices"},
}


def test_summary_shows_accuracies_agreement_and_tokens_saved(run_course):
    lines = run_course.summary(REPORT)
    text = "\n".join(lines)
    shown = {line.strip().rsplit(" ", 1)[0].strip(): line.rsplit(" ", 1)[1] for line in lines[1:5]}
    assert shown == {"teacher accuracy (with the prompt)": "0.930", "student accuracy (without it)": "0.871",
                     "classic baseline accuracy": "0.800", "student-teacher agreement": "0.900"}
    assert "teacher 3,120.6, student 50.6, saved 3,070.0 (98% of the teacher's)" in text  # one decimal each
    assert "stand-in teacher" in text and "not from LLMs" in text
    assert "the student pays the run back after  15,432 queries (one-off $9.77; EXAMPLE prices)" in text


def test_summary_of_a_tinker_run_has_no_offline_note_and_tolerates_gaps(run_course):
    text = "\n".join(
        run_course.summary({"backend": "tinker", "offline": False, "teacher_accuracy": 0.95})
    )
    assert "0.950" in text and "n/a" in text
    assert "not from LLMs" not in text


def test_notebooks_are_found_in_course_order(run_course, tmp_path):
    for name in ("02_b.ipynb", "00_a.ipynb", "10_c.ipynb", "notes.ipynb", "1_x.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in run_course.course_notebooks(tmp_path)] == [
        "00_a.ipynb",
        "02_b.ipynb",
        "10_c.ipynb",
    ]


def test_a_failing_cell_is_named_and_the_executed_copy_kept(run_course, tmp_path):
    nb = new_notebook(
        cells=[
            new_markdown_cell("# a notebook that fails"),
            new_code_cell("x = 1"),
            new_code_cell("raise ValueError('no such label')"),
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "07_broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(run_course.CourseError) as caught:
        run_course.execute_notebook(path, tmp_path / "out", timeout=120)
    message = str(caught.value)
    assert "07_broken.ipynb, cell 3 failed: ValueError: no such label" in message
    assert "\n" not in message
    executed = nbformat.read(tmp_path / "out" / "07_broken.ipynb", as_version=4)
    assert executed.cells[2].outputs[0]["ename"] == "ValueError"


def test_a_notebook_that_cannot_be_read_is_one_line(tmp_path, run_course):
    """A notebook cut short by an interrupted save: one line naming it, no traceback."""
    path = tmp_path / "03_cut.ipynb"
    path.write_text('{"cells": [', encoding="utf-8")
    with pytest.raises(run_course.CourseError, match=r"^03_cut\.ipynb could not be read as a notebook: ") as caught:
        run_course.execute_notebook(path, tmp_path / "out", timeout=120)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("backend", ["local", "tinker"])
@pytest.mark.parametrize("quick", [None, "0", "1"])
def test_each_backend_and_size_has_its_own_pipeline_folder(run_course, monkeypatch, backend, quick):
    monkeypatch.setenv("PD_BACKEND", backend)
    if quick is not None:
        monkeypatch.setenv("PD_QUICK", quick)
    # the pipeline's default is the whole pool on either backend; PD_QUICK=1 the sample
    expected = (f"{backend}-quick", True) if quick == "1" else (backend, False)
    assert run_course.pipeline_setting() == expected


def test_make_run_stops_at_the_first_failing_notebook_with_one_line(run_course, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PD_BUILD", str(tmp_path))  # main() sets it for its notebooks: gone again after the test
    ran = []
    monkeypatch.setattr(run_course, "run_pipeline", lambda *a, **k: ran.append("pipeline"))

    def fail(path, *rest):
        ran.append(path.name)
        raise run_course.CourseError(f"{path.name}, cell 3 failed: ValueError: no such label")

    monkeypatch.setattr(run_course, "execute_notebook", fail)
    assert run_course.main(["--build", str(tmp_path)]) == 1
    assert ran == ["pipeline", run_course.course_notebooks()[0].name]  # nothing after the failure
    assert capsys.readouterr().err.splitlines() == [f"make run: {ran[1]}, cell 3 failed: ValueError: no such label"]


def test_make_run_ends_with_the_pipelines_summary(run_course, monkeypatch, tmp_path, capsys):
    import json

    monkeypatch.setenv("PD_BUILD", str(tmp_path))
    monkeypatch.setenv("PD_BACKEND", "local")
    ran = []
    monkeypatch.setattr(run_course, "run_pipeline", lambda out, quick=False: ran.append((out, quick)))
    monkeypatch.setattr(run_course, "execute_notebook", lambda path, *rest: ran.append(path.name) or 1.0)
    run_dir = tmp_path / "run" / "local"
    run_dir.mkdir(parents=True)
    (run_dir / "report.json").write_text(json.dumps(REPORT))
    assert run_course.main(["--build", str(tmp_path)]) == 0
    assert ran == [(run_dir, False), *(p.name for p in run_course.course_notebooks())]
    out = capsys.readouterr().out
    assert "\n".join(run_course.summary(REPORT)) in out


@pytest.mark.parametrize("name, value", [("PD_QUICK", "maybe"), ("PD_BACKEND", "gpu")])
def test_a_bad_setting_stops_make_run_with_one_line_before_any_work(run_course, monkeypatch, tmp_path, capsys, name, value):
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("PD_BUILD", str(tmp_path))  # main() sets it for its notebooks: gone again after the test
    ran = []
    monkeypatch.setattr(run_course, "run_pipeline", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(run_course, "execute_notebook", lambda *a, **k: ran.append(a))
    assert run_course.main(["--build", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"make run: setting: {name} must be {'1 or 0' if name == 'PD_QUICK' else 'one of local, tinker'}, "
                   f"got {value!r}"]
    assert not ran
