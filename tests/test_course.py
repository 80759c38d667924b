"""helpers.course: the notebooks' shared work folder keeps each backend's and size's work apart."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from helpers import connect, course
from helpers.dataio import DataError, read_conversations
from helpers.local import TEACHER_MODEL


def test_offline_and_tinker_work_never_stand_in_for_each_other(tmp_path, monkeypatch):
    monkeypatch.setenv("PD_WORKDIR", str(tmp_path))
    monkeypatch.setattr(course, "QUICK_QUERIES", 20)  # a quick sample of 20 queries keeps the test short
    local, tinker = connect("local"), SimpleNamespace(backend="tinker")
    assert course.run_dir(local) == tmp_path / "local-quick"  # offline defaults to the quick sample
    assert course.run_dir(local, quick=False) == tmp_path / "local"
    assert course.run_dir(tinker) == tmp_path / "tinker"

    # A Tinker run's labels are already in the work folder; an offline notebook must not take them.
    tinker_labels = course.run_dir(tinker) / "distill.jsonl"
    line = json.dumps({"messages": [{"role": "user", "content": "hola"}, {"role": "assistant", "content": "es"}]})
    tinker_labels.write_text(line + "\n")
    path = course.ensure_distillation_data(local, progress=False)
    assert path == tmp_path / "local-quick" / "distill.jsonl"
    assert len(read_conversations(path)) == 20
    assert json.loads(path.with_name(path.name + ".summary.json").read_text())["teacher"] == TEACHER_MODEL
    assert tinker_labels.read_text() == line + "\n"

    # Made once: a second call returns the same file untouched.
    made = path.stat().st_mtime_ns
    assert course.ensure_distillation_data(local, progress=False) == path
    assert path.stat().st_mtime_ns == made


def test_pd_quick_chooses_the_sample_on_either_backend(tmp_path, monkeypatch):
    import pytest

    from helpers.advanced import resolve_quick
    from helpers.dataio import DataError

    monkeypatch.setenv("PD_WORKDIR", str(tmp_path))
    local, tinker = connect("local"), SimpleNamespace(backend="tinker")
    monkeypatch.delenv("PD_QUICK", raising=False)
    assert (course.is_quick(local), course.is_quick(tinker)) == (True, False)
    monkeypatch.setenv("PD_QUICK", "1")  # a cheap first run with a key
    assert course.is_quick(tinker) and resolve_quick(tinker, None)
    assert course.run_dir(tinker) == tmp_path / "tinker-quick"
    assert not course.is_quick(tinker, quick=False)  # an explicit argument wins
    monkeypatch.setenv("PD_QUICK", "0")
    assert not course.is_quick(local) and course.run_dir(local) == tmp_path / "local"
    monkeypatch.setenv("PD_QUICK", "maybe")
    with pytest.raises(DataError, match="PD_QUICK must be 1 or 0, got 'maybe'"):
        course.is_quick(local)


def test_a_saved_figure_of_offline_results_says_so_on_screen_and_in_the_file(tmp_path, monkeypatch):
    """course.save puts the offline note on a figure of an offline run's results, before it is
    shown or written; a Tinker run's figure, or one of the data alone, is left as it is."""
    from matplotlib.figure import Figure

    from helpers.plots import OFFLINE_NOTE

    monkeypatch.setenv("PD_BUILD", str(tmp_path))
    offline, tinker = SimpleNamespace(backend="local"), SimpleNamespace(backend="tinker")
    figures = {name: Figure() for name in ("offline", "tinker", "data")}
    course.save(figures["offline"], "offline.png", offline)
    course.save(figures["tinker"], "tinker.png", tinker)
    course.save(figures["data"], "data.png")
    assert [figures[name].get_suptitle() for name in figures] == [OFFLINE_NOTE, "", ""]
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["data.png", "offline.png", "tinker.png"]


def test_notebook_04_run_first_leaves_notebook_03_a_student_to_reuse(tmp_path, monkeypatch):
    """Notebook 04 run before 03 trains the student (ensure_student); 03 then trains with the
    course's settings into the same folder, and must find that run finished instead of training
    again (on Tinker a second paid run): both take their settings from course.student_config."""
    from helpers.train import train

    monkeypatch.setenv("PD_WORKDIR", str(tmp_path))
    monkeypatch.setattr(course, "QUICK_QUERIES", 40)
    local = connect("local")
    folder = course.ensure_student(local)  # what notebook 04 does first
    rows = read_conversations(course.ensure_distillation_data(local, progress=False))
    config = course.student_config(local, rows)  # what notebook 03 trains with
    assert config.eval_every >= 1
    result = train(connect("local", store=folder / "weights"), rows, config, out_dir=folder)
    assert result.first_step == len(result.history) > 0  # reloaded, nothing trained


def test_the_payback_of_the_course_run_counts_what_notebooks_02_and_03_spent(tmp_path, monkeypatch, capsys):
    from helpers.evaluate import cost_table
    from helpers.train import read_progress

    monkeypatch.setenv("PD_WORKDIR", str(tmp_path))
    monkeypatch.setattr(course, "QUICK_QUERIES", 40)
    local = connect("local")
    folder = course.ensure_student(local)
    summary = json.loads((folder.parent / "distill.jsonl.summary.json").read_text())
    history = read_progress(folder / "progress.json")["history"]
    prices = {"teacher": 1.0, "student": 1.0, "sampled": 2.0, "train": 3.0}
    cost = cost_table(3000, 50, prices)
    paid = course.distillation_payback(local, cost, prices)
    assert paid["labelled_queries"] == summary["distinct"] == 40
    assert paid["teacher_answer_tokens"] == summary["completion_tokens_per_query"] > 0
    assert paid["train_tokens"] == sum(step["tokens"] for step in history) > 0 and not paid["train_tokens_estimated"]
    assert paid["training_usd"] == pytest.approx(paid["train_tokens"] * 3.0 / 1e6)
    assert paid["labelling_usd"] == pytest.approx(40 * (3000 + 2 * summary["completion_tokens_per_query"]) / 1e6)
    assert "offline token counts" in course.describe_payback(paid, local)

    # a student trained before steps recorded their tokens: estimated from steps, batch and tokens per example
    record = json.loads((folder / "progress.json").read_text())
    for step in record["history"]:
        del step["tokens"]
    (folder / "progress.json").write_text(json.dumps(record))
    old = course.distillation_payback(local, cost, prices)
    batch = record["fingerprint"]["config"]["batch_size"]
    assert old["train_tokens_estimated"] and old["train_tokens"] == round(len(history) * batch * (50 + 2))
    assert "(estimated)" in course.describe_payback(old)

    # notebook 03's training asked again with other settings and interrupted: progress.json now
    # records that run, checkpoint.json still the finished student that notebook 04 scores
    from dataclasses import replace

    from helpers.dataio import read_conversations
    from helpers.train import train

    (folder / "progress.json").write_text(json.dumps(record | {"history": history}))
    rows = read_conversations(folder.parent / "distill.jsonl")
    other = replace(course.student_config(local, rows), learning_rate=1e-3, save_every=1)

    def interrupt(info):
        if info["kind"] == "step" and info["step"] == 2:
            raise RuntimeError("the learner pressed stop")

    with pytest.raises(RuntimeError, match="pressed stop"):
        train(connect("local", store=folder / "weights"), rows, other, out_dir=folder, callbacks=[interrupt])
    assert "holds a run with other data or settings; this run starts at step 1 and replaces it" in capsys.readouterr().err
    with pytest.raises(DataError, match="progress.json records another run than the finished student in checkpoint.json"):
        course.distillation_payback(local, cost, prices)

    (folder / "progress.json").unlink()
    with pytest.raises(DataError, match="no finished student with its training record; run notebook 03"):
        course.distillation_payback(local, cost, prices)


def test_a_finished_generation_with_failed_requests_asks_them_again(tmp_path, monkeypatch):
    """generate keeps its journal when requests failed, so that running it again asks those only.
    Notebook 02 (``retry_failed``) runs it again, and its estimate counts them; notebooks 03 to 05
    use the file as it is, so the data does not change under a student trained on it."""
    from helpers.generate import FlakyTeacher

    monkeypatch.setenv("PD_WORKDIR", str(tmp_path))
    monkeypatch.setattr(course, "QUICK_QUERIES", 20)
    local = connect("local")
    real = course._teacher
    monkeypatch.setattr(course, "_teacher", lambda service, run: FlakyTeacher(real(service, run), 0.3, permanent=True))
    path = course.ensure_distillation_data(local, progress=False)
    failed = json.loads(path.with_name(path.name + ".summary.json").read_text())["rejects"]["error"]
    assert failed > 0 and len(read_conversations(path)) == 20 - failed

    monkeypatch.setattr(course, "_teacher", real)  # the teacher answers now
    made = path.stat().st_mtime_ns
    assert course.distillation_estimate(local).requests == 0  # as notebooks 03 to 05 see it: kept
    assert course.ensure_distillation_data(local, progress=False) == path and path.stat().st_mtime_ns == made
    assert course.distillation_estimate(local, retry_failed=True).requests == failed  # notebook 02
    assert course.ensure_distillation_data(local, progress=False, retry_failed=True) == path
    assert len(read_conversations(path)) == 20
    assert not path.with_name(path.name + ".partial").exists()
    assert course.distillation_estimate(local, retry_failed=True).requests == 0


def test_the_quick_sample_spreads_over_the_whole_pool_however_it_is_ordered():
    """A pool sorted by language (a learner's own --queries) gives each language its share of the
    sample (it took the first 1,200 rows of any pool under 2,400: German, and a fifth of the French)."""
    from collections import Counter

    from helpers.course import even_sample

    pool = [{"text": f"Satz {i}", "label": "de"} for i in range(1000)] + [{"text": f"phrase {i}", "label": "fr"} for i in range(1000)]
    sample = even_sample(pool, 1200)
    assert len(sample) == 1200 and Counter(r["label"] for r in sample) == {"de": 600, "fr": 600}
    assert len({r["text"] for r in sample}) == 1200 and sample[-1] == pool[1998]
    assert even_sample(pool[:5], 1200) == pool[:5]


def test_a_folder_setting_names_one_folder_from_anywhere(monkeypatch, tmp_path):
    """PD_WORKDIR and PD_BUILD: empty is unset; ``~`` is the home folder; a relative path is from
    the repository root, whether the notebooks (run in notebooks/) or a command (run from the
    root) read it."""
    import os

    monkeypatch.setenv("HOME", str(tmp_path))
    relative = os.path.relpath(tmp_path / "rel", course.ROOT)
    for name in ("PD_WORKDIR", "PD_BUILD"):
        monkeypatch.setenv(name, "  ")
        assert course._folder_setting(name) is None
        monkeypatch.setenv(name, "~/mine")
        assert course._folder_setting(name) == tmp_path / "mine"
        for where in (course.ROOT, course.ROOT / "notebooks"):
            monkeypatch.chdir(where)
            monkeypatch.setenv(name, relative)
            assert course._folder_setting(name).resolve() == (tmp_path / "rel").resolve()
    assert course.workdir().resolve() == (tmp_path / "rel").resolve()
    assert course.figure_path("f.png").resolve() == (tmp_path / "rel" / "figures" / "f.png").resolve()
    monkeypatch.setenv("PD_BUILD", "")
    assert course.figure_path("f.png") is None
