"""The command line: bad input gets a one-line reason and a non-zero exit, outputs are kept,
and an API key never shows up anywhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAKE_KEY = "tml-FAKE-KEY-0123456789-do-not-print"


def cli(*args, env=None, timeout=300):
    full_env = {**os.environ, "PD_BACKEND": "local", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "helpers", *args], capture_output=True, text=True, cwd=ROOT,
                          env=full_env, timeout=timeout)


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0, result
    # progress bars and the backend notice may precede it; the reason is one line of its own
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


GOOD = {"text": "Guten Morgen, wie geht es dir?", "label": "de"}


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    files = {
        "malformed": (b'{"text": "ok", "label": "de"}\n{"text": \n', ":2: malformed JSON"),
        "schema": (b'{"txt": "hola", "label": "es"}\n', ":1: missing \"text\""),
        "label": (b'{"text": "ciao", "label": "it"}\n', ":1: unknown label 'it'"),
        "empty": (b"", "no rows (empty file)"),
        "utf8": (b'{"text": "\xff\xfe", "label": "ot"}\n', ":1: invalid UTF-8"),
        "long": (b'{"text": "' + b"x" * 1_100_000 + b'", "label": "ot"}\n', ":1: line is"),
        "surrogate": (b'{"text": "ok", "label": "de"}\n{"text": "lol \\ud83d", "label": "ot"}\n', ":2: a lone surrogate"),
    }
    out = {}
    for name, (content, message) in files.items():
        p = tmp / f"{name}.jsonl"
        p.write_bytes(content)
        out[name] = (p, message)
    out["directory"] = (tmp, "is a directory")
    return out


@pytest.mark.parametrize("case", ["malformed", "schema", "label", "empty", "utf8", "long", "surrogate", "directory"])
def test_evaluate_refuses_bad_gold_files(tmp_path, case):
    path, message = _bad_files(tmp_path)[case]
    result = cli("evaluate", "--data", str(path), "--predictor", "teacher", "--out", str(tmp_path / "o"))
    assert_one_line_error(result, message)


@pytest.mark.parametrize("case", ["malformed", "empty", "utf8", "surrogate", "directory"])
def test_generate_refuses_bad_query_files(tmp_path, case):
    path, message = _bad_files(tmp_path)[case]
    result = cli("generate", "--queries", str(path), "--out", str(tmp_path / "d.jsonl"))
    assert_one_line_error(result, message)


def test_generate_names_a_query_file_whose_queries_are_all_empty(tmp_path):
    queries = tmp_path / "allempty.jsonl"
    queries.write_text(json.dumps({"text": ""}) + "\n" + json.dumps({"text": " \n "}) + "\n")
    for estimate in ([], ["--estimate"]):
        result = cli("generate", "--queries", str(queries), "--out", str(tmp_path / "d.jsonl"), *estimate)
        assert_one_line_error(result, f"error: {queries}: all 2 queries are empty")
    assert list(tmp_path.iterdir()) == [queries]


def test_train_refuses_bad_data_and_settings(tmp_path):
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "hola"}, {"role": "assistant", "content": "es"}]}) + "\n")
    assert_one_line_error(cli("train", "--data", str(chat), "--out", str(tmp_path / "s"), "--lr", "0"), "--lr must be a finite number > 0, got 0.0")
    assert_one_line_error(cli("train", "--data", str(chat), "--out", str(tmp_path / "s"), "--epochs", "0"), "--epochs must be a whole number >= 1")
    assert_one_line_error(cli("train", "--data", str(chat), "--out", str(tmp_path / "s"), "--rank", "0"), "--rank must be a whole number >= 1")
    assert_one_line_error(cli("train", "--data", str(chat), "--out", str(tmp_path / "s"), "--batch-size", "0"), "--batch-size must be a whole number >= 1")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hola"}, {"role": "assistant", "content": "spanish"}]}) + "\n")
    assert_one_line_error(cli("train", "--data", str(bad), "--out", str(tmp_path / "s")), ":1: assistant answer 'spanish'")


def test_a_row_too_long_for_the_model_is_named_by_its_file_and_line(tmp_path):
    """The file reads fine; the model's context refuses the row. The error still names where it is."""
    rows = [("hola", "es"), ("sehr lange Rede " * 400, "de"), ("hallo", "de")]
    chat = tmp_path / "chat.jsonl"
    chat.write_text("\n\n".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
                                 for q, a in rows) + "\n")
    result = cli("train", "--data", str(chat), "--out", str(tmp_path / "s"), "--epochs", "1")
    assert_one_line_error(result, f"error: {chat}:3: ", "tokens, more than local/tiny's context of 512; shorten or drop it")
    assert not (tmp_path / "s" / "progress.json").exists()


def test_existing_outputs_are_not_overwritten(tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("precious")
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "hola"}, {"role": "assistant", "content": "es"}]}) + "\n")
    assert_one_line_error(cli("train", "--data", str(chat), "--out", str(other)), "use --overwrite")
    assert (other / "notes.txt").read_text() == "precious"
    assert_one_line_error(cli("run", "--out", str(other), "--quick"), "use --overwrite")
    assert (other / "notes.txt").read_text() == "precious"
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"text": "Bonjour à tous"}) + "\n")
    target = tmp_path / "d.jsonl"
    target.write_text("not generated by us\n")
    assert_one_line_error(cli("generate", "--queries", str(queries), "--out", str(target)), str(target))
    assert target.read_text() == "not generated by us\n"


def test_train_overwrite_replaces_its_own_files_only(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "distill.jsonl").write_text("the user's data\n")
    (folder / "progress.json").write_text("{}")  # an earlier run's record
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "hola"}, {"role": "assistant", "content": "es"}]}) + "\n")
    result = cli("train", "--data", str(chat), "--out", str(folder), "--overwrite", "--epochs", "1", "--val-fraction", "0")
    assert result.returncode == 0, result.stderr
    assert (folder / "distill.jsonl").read_text() == "the user's data\n"
    assert json.loads((folder / "checkpoint.json").read_text())["steps"] == 1
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.json", "distill.jsonl", "progress.json", "weights"]


def test_train_overwrite_keeps_the_run_it_was_to_replace_when_the_new_one_fails_before_saving(tmp_path):
    """--overwrite sets the earlier run aside, not away: a new run that stops before its first
    checkpoint (here on a row too long for the model, found once the model is open) puts it back."""
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "progress.json").write_text('{"earlier": true}')
    (folder / "checkpoint.json").write_text('{"earlier": true}')
    (folder / "weights").mkdir()
    (folder / "weights" / "w.pt").write_text("earlier weights")
    chat = _chat_file(tmp_path / "chat.jsonl", [("hola", "es"), ("Das Wetter ist heute schön. " * 150, "de")])
    result = cli("train", "--data", str(chat), "--out", str(folder), "--overwrite", "--epochs", "1", "--val-fraction", "0")
    assert_one_line_error(result, f"{chat}:2:", "context", f"the run it was to replace is kept in {folder}")
    assert (folder / "progress.json").read_text() == (folder / "checkpoint.json").read_text() == '{"earlier": true}'
    assert (folder / "weights" / "w.pt").read_text() == "earlier weights"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.json", "progress.json", "weights"]


def test_evaluate_redoes_a_retrained_predictor(tmp_path):
    from helpers.baseline import save_baseline, train_baseline

    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in
                            [("Guten Morgen, wie geht es dir?", "de"), ("Bonjour à tous", "fr")]))
    model = tmp_path / "baseline"
    texts = ["Guten Morgen", "Bonjour", "Wie geht's", "Merci beaucoup", "Danke schön", "À bientôt"]
    save_baseline(train_baseline(texts, ["de", "fr", "de", "fr", "de", "fr"]), model)
    args = ("evaluate", "--data", str(gold), "--predictor", f"baseline:{model}", "--out", str(tmp_path / "e"))
    assert cli(*args).returncode == 0
    again = cli(*args)
    assert again.returncode == 0 and "already done" in again.stderr
    save_baseline(train_baseline(texts, ["fr", "de", "fr", "de", "fr", "de"]), model)  # retrained, same folder
    assert_one_line_error(cli(*args), "exists from another evaluation")


def test_unwritable_output(tmp_path):
    if os.geteuid() == 0:
        blocked = Path("/proc/pd-cannot-write-here")  # even root cannot create files in /proc
    else:
        blocked = tmp_path / "ro"
        blocked.mkdir()
        blocked.chmod(0o500)
    gold = tmp_path / "g.jsonl"
    gold.write_text(json.dumps(GOOD) + "\n")
    result = cli("evaluate", "--data", str(gold), "--predictor", "teacher", "--out", str(blocked / "x"))
    assert_one_line_error(result, f"{blocked / 'x'}/metrics.json: cannot ")  # names the file it could not write


def test_unknown_backend_setting():
    result = cli("run", "--out", "/tmp/x", env={"PD_BACKEND": "cloud"})
    assert_one_line_error(result, "PD_BACKEND must be one of")


def test_evaluate_prints_accuracy_last_and_writes_metrics(tmp_path):
    gold = tmp_path / "g.jsonl"
    rows = [GOOD, {"text": "SELECT id FROM users;", "label": "ot"}, {"text": "Καλημέρα σε όλους τους φίλους", "label": "el"}]
    gold.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    result = cli("evaluate", "--data", str(gold), "--predictor", "teacher", "--out", str(tmp_path / "o"), env={"TINKER_API_KEY": FAKE_KEY})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "accuracy=1.0000 n=3"
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["n"] == 3 and metrics["labels"][-1] == "ot" and len(metrics["confusion"]) == 13
    # the key was in the environment: it appears in no output and no file
    assert FAKE_KEY not in result.stdout + result.stderr
    for f in (tmp_path / "o").rglob("*"):
        if f.is_file():
            assert FAKE_KEY.encode() not in f.read_bytes(), f


CHAT = [("Guten Morgen zusammen", "de"), ("Buenos días a todos", "es"), ("Bonjour tout le monde", "fr"),
        ("Good morning everyone", "en")]


def _chat_file(path: Path, pairs) -> Path:
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": a}]},
                                       ensure_ascii=False) + "\n" for t, a in pairs), encoding="utf-8")
    return path


def _gold_and_baseline(tmp: Path) -> tuple[Path, Path]:
    from helpers.baseline import save_baseline, train_baseline

    gold = tmp / "gold.jsonl"
    gold.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in
                            [("Guten Morgen, wie geht es dir?", "de"), ("Bonjour à tous", "fr")]))
    texts = ["Guten Morgen", "Bonjour", "Wie geht's", "Merci beaucoup", "Danke schön", "À bientôt"]
    save_baseline(train_baseline(texts, ["de", "fr", "de", "fr", "de", "fr"]), tmp / "baseline")
    return gold, tmp / "baseline"


@pytest.mark.slow
def test_train_refuses_another_run_in_its_folder_but_goes_on_with_its_own(tmp_path):
    a, b = _chat_file(tmp_path / "a.jsonl", CHAT), _chat_file(tmp_path / "b.jsonl", CHAT[:3])
    folder = tmp_path / "v1"
    first = ("train", "--data", str(a), "--out", str(folder), "--epochs", "1", "--val-fraction", "0")
    trained = cli(*first)
    assert trained.returncode == 0 and trained.stdout.startswith("trained local/tiny for "), trained.stdout
    finished = (folder / "checkpoint.json").read_text()
    reused = cli(*first)  # the same run asked again says what it did: nothing
    assert reused.returncode == 0 and reused.stdout.startswith("reused the finished run of local/tiny ("), \
        reused.stdout
    assert "nothing trained" in reused.stdout and (folder / "checkpoint.json").read_text() == finished
    for other in (("--data", str(b)), ("--data", str(a), "--lr", "0.01")):  # other data; other settings
        refused = cli("train", *other, "--out", str(folder), "--epochs", "1", "--val-fraction", "0")
        assert_one_line_error(refused, str(folder), "other data or settings", "--overwrite")
        assert (folder / "checkpoint.json").read_text() == finished
    # the same run, stopped before its checkpoint.json was written: the same command goes on with it
    (folder / "checkpoint.json").unlink()
    again = cli(*first)
    assert again.returncode == 0, again.stderr
    assert json.loads((folder / "checkpoint.json").read_text())["examples"] == 4
    replaced = cli("train", "--data", str(b), "--out", str(folder), "--epochs", "1", "--val-fraction", "0", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads((folder / "checkpoint.json").read_text())["examples"] == 3


@pytest.mark.parametrize("content, message", [
    ('{"steps": [', ":1: malformed JSON"),  # cut off mid-write by hand or by a full disk
    ("[]", "not a training progress record"),
    ('{"fingerprint": {}, "step": "3", "history": [], "validation": [], "checkpoints": []}', "not a training progress record"),
])
def test_a_broken_progress_file_is_named_and_kept(tmp_path, content, message):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "progress.json").write_text(content)
    result = cli("train", "--data", str(_chat_file(tmp_path / "a.jsonl", CHAT)), "--out", str(folder))
    assert_one_line_error(result, f"{folder / 'progress.json'}", message)
    assert (folder / "progress.json").read_text() == content


def test_run_refuses_a_file_for_its_folder(tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("mine")
    assert_one_line_error(cli("run", "--out", str(target), "--quick"), str(target), "is not a folder")
    assert_one_line_error(cli("run", "--out", str(target / "sub"), "--quick"), str(target / "sub"), "cannot create folder")
    assert target.read_text() == "mine"


def test_a_run_set_aside_by_a_killed_overwrite_is_put_back_by_the_next_train(tmp_path):
    """A train --overwrite killed outright (a closed terminal) before its first checkpoint cannot
    put the earlier run back itself: the next train in the folder does, and says so. Once the new
    run had a checkpoint, it stands, and the set-aside run is dropped."""
    import shutil

    from helpers.cli import SET_ASIDE

    def chat(label):
        return str(_chat_file(tmp_path / f"chat_{label}.jsonl", [("hola", label)]))

    folder = tmp_path / "student"
    args = ("--out", str(folder), "--epochs", "1", "--val-fraction", "0")
    assert cli("train", "--data", chat("fr"), *args).returncode == 0  # the earlier run
    earlier = (folder / "checkpoint.json").read_text()
    (folder / SET_ASIDE).mkdir()  # as a train --overwrite killed before its first checkpoint leaves it
    for name in ("progress.json", "checkpoint.json", "weights"):
        shutil.move(folder / name, folder / SET_ASIDE / name)
    (folder / "weights").mkdir()
    result = cli("train", "--data", chat("es"), *args)
    assert f"{folder}: put back the run that an interrupted 'train --overwrite' had set aside" in result.stderr
    assert_one_line_error(result, "holds a training run with other data or settings")  # the earlier run, back
    assert (folder / "checkpoint.json").read_text() == earlier and not (folder / SET_ASIDE).exists()

    (folder / SET_ASIDE).mkdir()
    (folder / SET_ASIDE / "checkpoint.json").write_text('{"older": true}')
    again = cli("train", "--data", chat("es"), *args, "--overwrite")
    assert again.returncode == 0, again.stderr  # progress.json was there: the set-aside run was dropped
    assert not (folder / SET_ASIDE).exists() and json.loads((folder / "checkpoint.json").read_text())["steps"] == 1


def test_run_checks_its_models_before_labelling_and_names_a_row_the_student_cannot_take(tmp_path):
    """A student the server cannot train is refused before the teacher is asked (on Tinker the
    labelling is paid); a labelled query too long for the student's context is named by its
    line in distill.jsonl, the file that holds it."""
    from helpers.backend import BackendError
    from helpers.dataio import DataError
    from helpers.pipeline import run_pipeline

    queries = tmp_path / "q.jsonl"
    texts = ["Guten Morgen, wie geht es dir?", "Bonjour tout le monde", "Das Wetter ist heute schön. " * 120]
    queries.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    gold = ROOT / "data" / "test_gold.jsonl"
    with pytest.raises(BackendError, match="'local/policy-teacher' cannot be trained on this server"):
        run_pipeline(tmp_path / "a", backend="local", queries=queries, gold=gold, progress=False,
                     train_overrides={"base_model": "local/policy-teacher"})
    assert not (tmp_path / "a" / "distill.jsonl").exists()
    with pytest.raises(DataError, match=r"^\S*b/distill\.jsonl:3: .*context"):
        run_pipeline(tmp_path / "b", backend="local", queries=queries, gold=gold, progress=False)
    assert len((tmp_path / "b" / "distill.jsonl").read_text().splitlines()) == 3  # the labels are kept


def test_a_run_that_fails_leaves_no_earlier_report_looking_like_its_own(tmp_path):
    """Run again into a folder, a run that fails (here at training) leaves none of the earlier
    run's report, metrics, pictures or error table behind, while the labels it made are kept."""
    from helpers.dataio import DataError
    from helpers.pipeline import run_pipeline

    queries, out = tmp_path / "q.jsonl", tmp_path / "run"
    texts = ["Guten Morgen, wie geht es dir?", "Bonjour tout le monde", "Das Wetter ist heute schön. " * 120]
    queries.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out.mkdir()
    earlier = ["report.md", "report.json", "metrics_student.json", "metrics_teacher.json", "confusion.png", "errors.md"]
    for name in earlier:
        (out / name).write_text("from an earlier run")
    with pytest.raises(DataError, match="context"):
        run_pipeline(out, backend="local", queries=queries, gold=ROOT / "data" / "test_gold.jsonl", progress=False)
    assert [name for name in earlier if (out / name).exists()] == []
    assert (out / "distill.jsonl").exists()


def test_a_pool_the_teacher_gives_one_label_is_refused_before_the_student_is_trained(tmp_path):
    """The baseline needs two labels or more; a pool labelled all one way is named by its file
    before training (paid for, on Tinker) starts, not by scikit-learn after it."""
    from helpers.dataio import DataError
    from helpers.pipeline import run_pipeline

    queries = tmp_path / "q.jsonl"
    texts = ["Guten Morgen, wie geht es dir?", "Das Wetter ist heute schön.", "Ich lese gern Bücher."]
    queries.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    with pytest.raises(DataError, match=r"^\S*run/distill\.jsonl: the teacher gave every query the same label \(de\)"):
        run_pipeline(tmp_path / "run", backend="local", queries=queries, gold=ROOT / "data" / "test_gold.jsonl", progress=False)
    assert not (tmp_path / "run" / "student" / "checkpoint.json").exists()


def test_a_file_left_by_a_killed_writer_is_not_someone_elses(tmp_path):
    """A writer killed mid-write leaves a temporary file (its name carries the pid): the next run
    must not refuse the folder for it, or ask for --overwrite, which would replace the run."""
    from helpers.cli import check_output_dir
    from helpers.dataio import DataError
    from helpers.pipeline import _check_out

    out = tmp_path / "student"
    out.mkdir()
    (out / "progress.json").write_text("{}")
    (out / ".progress.json.999999-abc123.tmp").write_text("{")
    check_output_dir(out, False, ("progress.json", "checkpoint.json", "weights"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".report.json.999999-x1y2.tmp").write_text("{")
    (run_dir / ".confusion.png.999999-abc.tmp").write_bytes(b"")
    _check_out(run_dir, False)
    (run_dir / ".notes.tmp").write_text("mine")  # another program's: not ours, so the folder is refused
    with pytest.raises(DataError, match=r"\.notes\.tmp"):
        _check_out(run_dir, False)


def test_evaluate_keeps_every_file_it_did_not_write(tmp_path):
    gold, model = _gold_and_baseline(tmp_path)
    for name in ("predictions.jsonl", "confusion_baseline.png", "confusion_baseline_normalized.png"):
        out = tmp_path / name.replace(".", "_")
        out.mkdir()
        (out / name).write_text("precious")
        refused = cli("evaluate", "--data", str(gold), "--predictor", f"baseline:{model}", "--out", str(out))
        assert_one_line_error(refused, str(out / name), "--overwrite")
        assert (out / name).read_text() == "precious" and not (out / "metrics.json").exists()
    done = cli("evaluate", "--data", str(gold), "--predictor", f"baseline:{model}", "--out", str(out), "--overwrite")
    assert done.returncode == 0, done.stderr
    assert (out / name).read_bytes().startswith(b"\x89PNG") and (out / "metrics.json").exists()


def test_evaluate_overwrite_replaces_the_other_predictors_pictures_too(tmp_path):
    gold, model = _gold_and_baseline(tmp_path)
    out = tmp_path / "e"
    first = cli("evaluate", "--data", str(gold), "--predictor", f"baseline:{model}", "--out", str(out))
    assert first.returncode == 0, first.stderr
    (out / "notes.txt").write_text("mine")
    again = cli("evaluate", "--data", str(gold), "--predictor", "teacher", "--out", str(out), "--overwrite")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "metrics.json").read_text())["predictor"] == "teacher"
    # nothing left that shows another evaluation than metrics.json's; files it never wrote are kept
    assert sorted(p.name for p in out.iterdir()) == [
        "confusion_teacher.png", "confusion_teacher_normalized.png", "metrics.json", "notes.txt", "predictions.jsonl"]


def test_ctrl_c_says_what_the_next_run_does(tmp_path, monkeypatch, capsys):
    from helpers import cli as command_line
    from helpers import evaluate, train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setenv("PD_BACKEND", "local")
    gold, model = _gold_and_baseline(tmp_path)
    monkeypatch.setattr(evaluate, "evaluate_predictor", interrupted)
    argv = ["evaluate", "--data", str(gold), "--predictor", f"baseline:{model}", "--out", str(tmp_path / "e")]
    assert command_line.main(argv) == 130
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert "nothing was saved" in said and "resume" not in said
    assert not (tmp_path / "e").exists()  # true: nothing was (and the empty folder it made is gone)
    monkeypatch.setattr(train, "train", interrupted)
    chat = _chat_file(tmp_path / "a.jsonl", CHAT)
    assert command_line.main(["train", "--data", str(chat), "--out", str(tmp_path / "t"), "--backend", "local"]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err


def test_python_m_helpers_evaluate_is_the_same_command_as_python_m_helpers_evaluate():
    # Ctrl-C (here: the first thing evaluate does raises it) gets the package CLI's line and code, no traceback
    code = ("import runpy, sys\nimport helpers.dataio as d\n"
            "def stop(*a, **k):\n    raise KeyboardInterrupt\n"
            "d.read_gold = stop\nsys.argv = ['evaluate', '--data', 'data/dev_gold.jsonl', '--predictor', 'teacher']\n"
            "runpy.run_module('helpers.evaluate', run_name='__main__', alter_sys=True)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PD_BACKEND": "local"}, timeout=120)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr and "nothing was saved" in result.stderr.strip().splitlines()[-1]


def test_ctrl_c_while_evaluate_writes_its_files_waits_for_the_last(tmp_path, monkeypatch, capsys):
    import signal

    from helpers import cli as command_line
    from helpers import plots

    save = plots.save_figure

    def pressed_meanwhile(fig, path, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between predictions.jsonl and metrics.json
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(plots, "save_figure", pressed_meanwhile)
    monkeypatch.setenv("PD_BACKEND", "local")
    gold, model = _gold_and_baseline(tmp_path)
    out = tmp_path / "e"
    assert command_line.main(["evaluate", "--data", str(gold), "--predictor", f"baseline:{model}", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"metrics.json", "predictions.jsonl", "confusion_baseline.png",
                                               "confusion_baseline_normalized.png"}
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("accuracy=")


@pytest.mark.parametrize("case", ["missing checkpoint", "unreachable server"])
def test_evaluate_exits_2_like_every_command_when_the_backend_cannot_be_used(tmp_path, case):
    gold = tmp_path / "g.jsonl"
    gold.write_text(json.dumps(GOOD) + "\n")
    if case == "missing checkpoint":
        student = tmp_path / "student"
        student.mkdir()
        (student / "checkpoint.json").write_text(json.dumps({"sampler_path": "local://nowhere/sampler/final"}))
        args, env, says = ("--predictor", f"student:{student}", "--backend", "local"), {}, "no local checkpoint"
    else:
        args, says = ("--predictor", "teacher", "--backend", "tinker"), "cannot reach the Tinker server"
        env = {"TINKER_API_KEY": FAKE_KEY, "TINKER_BASE_URL": "http://127.0.0.1:9/api",  # nothing listens on port 9
               "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    result = cli("evaluate", "--data", str(gold), *args, "--no-progress", env=env)
    assert_one_line_error(result, says)
    assert result.returncode == 2 and FAKE_KEY not in result.stderr


def test_every_train_and_run_option_says_what_it_does():
    import argparse

    from helpers.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command in ("train", "run"):
        for action in commands[command]._actions:
            assert action.help, (command, action.option_strings)
    rank = next(a for a in commands["train"]._actions if "--rank" in a.option_strings)
    assert "local tiny models" in rank.help and "do not use it" in rank.help


def test_every_command_in_the_readmes_code_blocks_is_a_valid_command():
    """A newcomer copies them as they are: each must parse, and the files it reads must exist."""
    import re
    import shlex

    from helpers.cli import build_parser

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S)
    commands = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()
                if line.strip().startswith("python -m helpers ")]
    assert {c.split()[3] for c in commands} == {"generate", "train", "evaluate", "run"}, commands
    for command in commands:
        args = build_parser().parse_args(shlex.split(command)[3:])  # argparse exits on a bad one
        for name in ("queries", "data", "gold"):
            path = getattr(args, name, None)
            if path and path.startswith("data/"):
                assert (ROOT / path).is_file(), f"{command}: {path} does not exist"


# ------------------------------------------------------------------ the command line itself


def test_a_bad_option_is_one_line_naming_it_not_the_usage_block(tmp_path):
    """A value of the wrong type, as the learner typed it: one line, exit 2, no usage block."""
    result = cli("train", "--data", "x", "--out", str(tmp_path / "y"), "--epochs", "2.5")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "usage:" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --epochs: invalid int value: '2.5' (python -m helpers train --help lists the options)"]
    assert not (tmp_path / "y").exists()


@pytest.mark.parametrize("argv, says, command", [
    (["train", "--data", "x", "--out", "y", "--epochs", "2.5"], "--epochs: invalid int value: '2.5'", "train"),
    (["train", "--data", "x", "--lr", "fast", "--out", "y"], "--lr: invalid float value: 'fast'", "train"),
    (["train", "--data", "x"], "the following arguments are required: --out", "train"),
    (["train", "--data", "x", "--out", "y", "--epoch", "2", "--bogus"], "unrecognized arguments: --bogus", "train"),
    (["train", "--data", "x", "--out", "y", "--backend", "cloud"], "--backend: invalid choice: 'cloud'", "train"),
    (["evaluate", "--data", "g", "--predictor", "teacher", "--limit", "ten"], "--limit: invalid int value: 'ten'",
     "evaluate"),
    (["evaluate", "--data", "g"], "the following arguments are required: --predictor", "evaluate"),
    (["generate", "--queries", "q", "--out", "d", "--samples", "1.5"], "--samples: invalid int value: '1.5'",
     "generate"),
    (["generate", "--queries", "q", "--out", "d", "--temperature", "hot"], "--temperature: invalid float value",
     "generate"),
    (["run", "--out", "o", "--quick", "--fast"], "unrecognized arguments: --fast", "run"),
    (["run"], "the following arguments are required: --out", "run"),
    (["trian", "--data", "x"], "invalid choice: 'trian'", None),
    ([], "the following arguments are required: command", None),
])
def test_every_command_reports_a_bad_option_in_one_line(capsys, argv, says, command):
    from helpers import cli as command_line

    with pytest.raises(SystemExit) as stopped:
        command_line.main(argv)
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    prog = "python -m helpers" + (f" {command}" if command else "")
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and says in err and err.rstrip().endswith(f"({prog} --help lists the options)"), err


def test_help_is_argparse_as_usual(capsys):
    from helpers import cli as command_line

    for argv, first in ((["--help"], "usage: python -m helpers "), (["train", "--help"], "usage: python -m helpers train ")):
        with pytest.raises(SystemExit) as stopped:
            command_line.main(argv)
        out, err = capsys.readouterr()
        assert stopped.value.code == 0 and out.startswith(first) and err == ""
    assert "--epochs EPOCHS" in out and "passes over the data" in out


# ------------------------------------------------------------------ a failed command leaves no empty folder


@pytest.mark.parametrize("command", ["train", "evaluate", "run", "generate"])
def test_a_failed_command_removes_the_empty_output_folder_it_made(tmp_path, monkeypatch, capsys, command):
    """Each fails after its output folder was made (a model that cannot train, a missing
    checkpoint, an empty query pool, a teacher the backend does not offer): the folders it made
    are gone; a folder that was there before, empty or not, is kept as it was."""
    from helpers import cli as command_line

    monkeypatch.setenv("PD_BACKEND", "local")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    chat = _chat_file(tmp_path / "chat.jsonl", CHAT)
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps(GOOD) + "\n")
    student = tmp_path / "student"
    student.mkdir()
    (student / "checkpoint.json").write_text(json.dumps({"sampler_path": "local://nowhere/sampler/final"}))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"text": "Bonjour à tous"}) + "\n")

    def argv(out: Path) -> list[str]:
        return {
            "train": ["train", "--data", str(chat), "--out", str(out), "--model", "local/policy-teacher"],
            "evaluate": ["evaluate", "--data", str(gold), "--predictor", f"student:{student}", "--out", str(out),
                         "--no-progress"],
            "run": ["run", "--out", str(out), "--queries", str(empty), "--quick"],
            "generate": ["generate", "--queries", str(queries), "--out", str(out / "d.jsonl"), "--teacher", "nosuch"],
        }[command]

    says = {"train": "cannot be trained", "evaluate": "no local checkpoint", "run": "no rows (empty file)",
            "generate": "model 'nosuch' is not offered"}[command]
    new = tmp_path / "new" / "deeper"
    assert command_line.main(argv(new)) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # both folders it made, not only the last
    kept = tmp_path / "kept"
    kept.mkdir()
    assert command_line.main(argv(kept)) == 2
    assert kept.is_dir() and not list(kept.iterdir())  # there before: not the command's to remove
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    assert command_line.main([*argv(full), "--overwrite"]) == 2  # --overwrite: it goes as far as the others
    assert [p.name for p in full.iterdir()] == ["notes.txt"]


def _no_cleanup(monkeypatch):
    """Folders a failed command made stay: what is not there was never made."""
    from helpers import cli as command_line

    monkeypatch.setattr(command_line, "_remove_empty", lambda folders: None, raising=False)


LOCAL_MODELS = "local/policy-teacher, local/tiny, local/tiny-96, local/tiny-large, local/tiny-small"


@pytest.mark.parametrize("argv", [
    ["train", "--model", "nosuch"],
    ["evaluate", "--predictor", "base", "--model", "nosuch"],
    ["evaluate", "--predictor", "teacher", "--model", "nosuch"],
])
def test_a_model_the_backend_does_not_offer_is_refused_before_anything_is_made(tmp_path, monkeypatch, capsys, argv):
    """As generate does: one line listing the models the backend offers (here the local one's),
    before any output folder, training run or sampling client."""
    from helpers import cli as command_line
    from helpers import evaluate, train

    def never(*args, **kwargs):
        raise AssertionError("the command went on with a model the backend does not offer")

    monkeypatch.setenv("PD_BACKEND", "local")
    monkeypatch.setattr(train, "train", never)
    monkeypatch.setattr(evaluate, "evaluate_predictor", never)
    _no_cleanup(monkeypatch)
    if argv[0] == "train":
        data = _chat_file(tmp_path / "chat.jsonl", CHAT)
    else:
        data = tmp_path / "gold.jsonl"
        data.write_text(json.dumps(GOOD) + "\n")
    out = tmp_path / "out"
    assert command_line.main([*argv, "--data", str(data), "--out", str(out)]) == 2
    said = capsys.readouterr().err.splitlines()  # one line: evaluate's "backend:" notice comes after the checks
    assert said == [f"error: model 'nosuch' is not offered by this server; it offers: {LOCAL_MODELS}"]
    assert not out.exists()


def test_the_default_model_is_checked_too(tmp_path, monkeypatch, capsys):
    """Always, not only a model given with --model: a server (here the local backend, made to
    offer no local/tiny) that does not offer the command's default is named before the run."""
    from helpers import cli as command_line
    from helpers.local import LocalServiceClient

    offered = LocalServiceClient.get_server_capabilities

    def without_tiny(self):
        caps = offered(self)
        return caps.model_copy(update={"supported_models": [m for m in caps.supported_models
                                                            if m.model_name != "local/tiny"]})

    monkeypatch.setenv("PD_BACKEND", "local")
    monkeypatch.setattr(LocalServiceClient, "get_server_capabilities", without_tiny)
    _no_cleanup(monkeypatch)
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps(GOOD) + "\n")
    for argv in (["train", "--data", str(_chat_file(tmp_path / "chat.jsonl", CHAT))],
                 ["evaluate", "--data", str(gold), "--predictor", "base"]):
        assert command_line.main([*argv, "--out", str(tmp_path / argv[0])]) == 2
        assert "error: model 'local/tiny' is not offered by this server; it offers: local/policy-teacher, " \
            in capsys.readouterr().err
        assert not (tmp_path / argv[0]).exists()


@pytest.mark.parametrize("argv, says", [
    (["train", "--model", "local/policy-teacher"],
     "model 'local/policy-teacher' cannot be trained on this server; it trains: local/tiny, local/tiny-96, "
     "local/tiny-large, local/tiny-small"),
    (["evaluate", "--predictor", "base"],
     "model 'local/tiny' cannot be sampled on this server now (no sampling capacity); it samples: local/policy-teacher, "
     "local/tiny-96, local/tiny-large, local/tiny-small"),
    (["generate", "--teacher", "local/tiny"],
     "model 'local/tiny' cannot be sampled on this server now (no sampling capacity); it samples: local/policy-teacher, "
     "local/tiny-96, local/tiny-large, local/tiny-small"),
])
def test_a_listed_model_the_server_cannot_use_so_is_refused_before_anything_is_made(tmp_path, monkeypatch, capsys,
                                                                                    argv, says):
    """A server lists models it cannot train (the local stand-in teacher; on Tinker,
    ``trainable=False``) or has no sampling capacity for now (``sampleable=False``; here
    local/tiny is made to say so): one line names the ones it can use, before any folder,
    run or sampling client, not the server's error from the first request."""
    from helpers import cli as command_line
    from helpers import evaluate, train
    from helpers.local import LocalServiceClient

    offered = LocalServiceClient.get_server_capabilities

    def tiny_without_capacity(self):
        caps = offered(self)
        return caps.model_copy(update={"supported_models": [
            m.model_copy(update={"sampleable": False}) if m.model_name == "local/tiny" else m
            for m in caps.supported_models]})

    def never(*args, **kwargs):
        raise AssertionError("the command went on with a model the server cannot use so")

    monkeypatch.setenv("PD_BACKEND", "local")
    monkeypatch.setattr(LocalServiceClient, "get_server_capabilities", tiny_without_capacity)
    monkeypatch.setattr(LocalServiceClient, "create_sampling_client", never)
    monkeypatch.setattr(train, "train", never)
    monkeypatch.setattr(evaluate, "evaluate_predictor", never)
    if argv[0] != "generate":  # generate makes its output's folder before it connects; failing, it removes it
        _no_cleanup(monkeypatch)
    out = tmp_path / "out"
    if argv[0] == "train":
        data = ["--data", str(_chat_file(tmp_path / "chat.jsonl", CHAT)), "--out", str(out)]
    elif argv[0] == "evaluate":
        (tmp_path / "gold.jsonl").write_text(json.dumps(GOOD) + "\n")
        data = ["--data", str(tmp_path / "gold.jsonl"), "--out", str(out)]
    else:
        (tmp_path / "q.jsonl").write_text(json.dumps({"text": "Bonjour à tous"}) + "\n")
        data = ["--queries", str(tmp_path / "q.jsonl"), "--out", str(out / "d.jsonl")]
    assert command_line.main([*argv, *data]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {says}"]
    assert not out.exists()


def test_a_server_without_a_list_of_models_is_not_second_guessed(monkeypatch):
    """A Tinker-compatible server that answers the request for its models with an error status
    (connect() lets it through): the name goes to the SDK as before, which reports a bad one."""
    from types import SimpleNamespace

    import tinker

    from helpers import backend

    def no_such_route(service):
        response = SimpleNamespace(status_code=404, headers={}, request=None)  # what the SDK reads of an HTTP response
        raise tinker.NotFoundError("no such route", response=response, body=None)

    monkeypatch.setattr(backend, "_listed", no_such_route)
    assert backend.check_model(object(), "Qwen/Qwen3-8B") == "Qwen/Qwen3-8B"


# ------------------------------------------------------------------ an API key pasted with blanks around it


def _generate_with_key(key: str, tmp_path, monkeypatch, capsys) -> tuple[str, str]:
    """``generate --backend tinker`` with ``key`` in TINKER_API_KEY and a server where nothing
    listens (so no request is ever answered); it must stop with exit code 2. Returns stdout, stderr."""
    from helpers import cli as command_line

    for name in [n for n in os.environ if "proxy" in n.lower() or n == "TINKER_CREDENTIAL_CMD"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TINKER_API_KEY", key)
    monkeypatch.setenv("TINKER_BASE_URL", "http://127.0.0.1:9")  # nothing listens: never asked
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"text": "Bonjour à tous"}) + "\n")
    assert command_line.main(["generate", "--queries", str(queries), "--out", str(tmp_path / "d.jsonl"),
                              "--backend", "tinker"]) == 2
    return capsys.readouterr()


@pytest.mark.parametrize("key, says", [
    (f"  {FAKE_KEY}", "spaces before"),
    (f"{FAKE_KEY}\n", "a line break after"),
    (f" {FAKE_KEY}\r\n", "spaces and a line break before and after"),
])
def test_a_key_pasted_with_blanks_around_it_is_named_as_such(tmp_path, monkeypatch, capsys, key, says):
    """Not 'copy it again from the console' (the same text would come again): the line says what
    is around the key, before any request, and never shows the key."""
    from helpers.backend import BackendError, check_key

    out, err = _generate_with_key(key, tmp_path, monkeypatch, capsys)
    assert err.strip().splitlines() == [
        f"error: TINKER_API_KEY has {says} the key, pasted along with it: set it again to the key alone, "
        "or run offline with PD_BACKEND=local"]
    assert FAKE_KEY not in out + err and "tml-" not in out + err
    with pytest.raises(BackendError, match=f"TINKER_API_KEY has {says} the key") as refused:
        check_key("http://127.0.0.1:9", timeout=5)  # asked directly (a notebook's check): the same line
    assert FAKE_KEY not in str(refused.value)


@pytest.mark.parametrize("key, says", [
    (f"{FAKE_KEY}\n{FAKE_KEY}", f"a line break at character {len(FAKE_KEY) + 1} of {2 * len(FAKE_KEY) + 1}"),
    (f"{FAKE_KEY[:5]} {FAKE_KEY[5:]}", f"a blank at character 6 of {len(FAKE_KEY) + 1}"),
    (f"\u2018{FAKE_KEY}\u2019", f"a non-ASCII character \\(U\\+2018\\) at character 1 of {len(FAKE_KEY) + 2}"),
    (f"{FAKE_KEY}\x07", f"a control character at character {len(FAKE_KEY) + 1} of {len(FAKE_KEY) + 1}"),
])
def test_a_key_with_a_character_no_key_has_is_named_by_position_not_sent(tmp_path, monkeypatch, capsys, key, says):
    """Two keys pasted on two lines, a typographic quote: the SDK would put the text in a header
    and wait for a timeout; the line names the kind of character and where it is, never the key."""
    from helpers.backend import BackendError, check_key

    out, err = _generate_with_key(key, tmp_path, monkeypatch, capsys)
    assert len(err.strip().splitlines()) == 1 and re.match(f"error: TINKER_API_KEY has {says}, which no key has: ", err)
    assert FAKE_KEY not in out + err and "tml-" not in out + err
    with pytest.raises(BackendError, match=f"TINKER_API_KEY has {says}") as refused:
        check_key("http://127.0.0.1:9", timeout=5)
    assert "tml-" not in str(refused.value)


def test_run_estimate_counts_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = cli("run", "--out", str(out), "--quick", "--estimate")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("labelling  1,200 requests to local/policy-teacher")
    assert lines[1].startswith("training   local/tiny: at most ") and lines[1].endswith("(4 epochs)")
    assert lines[2].startswith("evaluation teacher 615 requests")
    assert "EXAMPLE prices" in lines[3]
    assert not out.exists()


def test_ctrl_c_while_the_command_starts_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    """The first second of a command imports the tinker SDK and the commands' modules; Ctrl-C
    then says that nothing was done, in one line, with exit code 130, both while python -m
    helpers imports the command line and while the command line imports the commands."""
    from helpers import cli as command_line

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(command_line, "build_parser", interrupted)
    assert command_line.main(["generate", "--queries", "q.jsonl", "--out", str(tmp_path / "d.jsonl")]) == 130
    assert capsys.readouterr().err.strip().splitlines() == [command_line.STARTING_INTERRUPTED]
    script = ("import builtins, runpy\n"
              "real = builtins.__import__\n"
              "def importing(name, *args, **kwargs):\n"
              "    if name == 'tinker':\n"
              "        raise KeyboardInterrupt\n"
              "    return real(name, *args, **kwargs)\n"
              "builtins.__import__ = importing\n"
              "runpy.run_module('helpers', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", script, "generate"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 130 and proc.stderr.strip().splitlines() == [command_line.STARTING_INTERRUPTED], proc.stderr


@pytest.mark.parametrize("case", ["missing checkpoint", "out is a file"])
def test_evaluate_says_a_bad_input_in_one_line_before_naming_its_backend(tmp_path, monkeypatch, capsys, case):
    """evaluate names its backend on stderr, but only once its input is checked: a missing
    checkpoint or an --out that is a file is the one line, as in every command."""
    from helpers import cli as command_line

    monkeypatch.setenv("PD_BACKEND", "local")
    data = tmp_path / "gold.jsonl"
    data.write_text(json.dumps(GOOD) + "\n")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    argv = (["--predictor", f"student:{tmp_path / 'nonexistent'}", "--out", str(tmp_path / "ev")]
            if case == "missing checkpoint" else ["--predictor", "teacher", "--out", str(blocker)])
    assert command_line.main(["evaluate", "--data", str(data), *argv]) == 2
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 1 and said[0].startswith("error: "), said
    assert ("nonexistent/checkpoint.json" in said[0]) if case == "missing checkpoint" else ("a_file" in said[0])


def test_a_full_disk_is_named_with_the_folder_being_written(tmp_path, monkeypatch, capsys):
    """'[Errno 28] No space left on device' names no file: the command adds the folder it writes in.
    The local backend's weights, which torch.save reports as a bare RuntimeError on a full disk,
    are named by their folder too, and no half-written folder is left."""
    import errno

    import torch

    from helpers import cli as command_line
    from helpers import generate
    from helpers.local.clients import load_model, save_checkpoint

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(generate, "main", full)
    out = tmp_path / "data" / "d.jsonl"
    assert command_line.main(["generate", "--queries", "q.jsonl", "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: writing in {out.parent}: [Errno 28] No space left on device"]

    def enforce_fail(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", enforce_fail)
    loaded = load_model("local/tiny")
    with pytest.raises(OSError, match=r"weights could not be written .* is the disk full\?\): \[enforce fail"):
        save_checkpoint(tmp_path / "ckpt" / "final", loaded)
    assert list((tmp_path / "ckpt").iterdir()) == []

