"""scripts/seed_study.py: per-run and voted scores against hand-computed cases, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def study(load_script):
    return load_script("seed_study")


def test_seed_spread_by_hand(study):
    gold = ["de", "fr", "es", "tr"]
    teacher = ["de", "fr", "es", "ot"]  # the teacher is wrong on the last item
    runs = {
        "seed 0": ["de", "fr", "en", "ot"],  # agrees 3/4, right 2/4
        "seed 1": ["de", "en", "es", "tr"],  # agrees 2/4, right 3/4
        "seed 2": ["de", "fr", "en", None],  # agrees 2/4, right 2/4 (None: unparsed)
    }
    result = study.seed_spread(runs, teacher, gold)
    assert result["runs"]["seed 0"] == {"accuracy": 0.5, "agreement": 0.75}
    assert result["runs"]["seed 1"] == {"accuracy": 0.75, "agreement": 0.5}
    assert result["runs"]["seed 2"] == {"accuracy": 0.5, "agreement": 0.5}
    assert result["mean_agreement"] == pytest.approx(7 / 12)
    assert result["mean_accuracy"] == pytest.approx(7 / 12)
    assert result["wrong_counts"] == [0, 1, 2, 2]
    assert result["wrong_in_runs"] == {1: 1, 2: 2}
    assert result["wrong_in_most"] == [2, 3]
    # Vote: de; fr (2 of 3); en (2 of 3); ot, tr and None once each, so the first run's ot.
    assert result["vote"] == {"accuracy": 0.5, "agreement": 0.75}
    assert result["disagreement_by_kind"] == {}
    # an unparsed answer is no vote where another run answered; only where none did
    spread = study.seed_spread({"a": [None, None], "b": [None, "en"], "c": ["fr", None]}, ["fr", "en"], ["fr", "fr"])
    assert spread["vote"] == {"accuracy": 0.5, "agreement": 1.0}
    assert study.seed_spread({"a": [None], "b": [None]}, ["de"], ["de"])["vote"] == {"accuracy": 0.0, "agreement": 0.0}
    # By kind: items 0 and 2 are "natural" (0 + 2 of 6 item-runs), items 1 and 3 "short" (1 + 2 of 6).
    kinds = ["natural", "short", "natural", "short"]
    assert study.seed_spread(runs, teacher, gold, kinds)["disagreement_by_kind"] == {
        "natural": {"items": 2, "disagreement": pytest.approx(2 / 6)},
        "short": {"items": 2, "disagreement": pytest.approx(3 / 6)},
    }


def test_seed_spread_rejects_mismatched_input(study):
    with pytest.raises(ValueError, match="at least one run"):
        study.seed_spread({}, ["de"], ["de"])
    with pytest.raises(ValueError, match="as many predictions"):
        study.seed_spread({"a": ["de", "fr"]}, ["de"], ["de"])
    with pytest.raises(ValueError, match="and kinds"):
        study.seed_spread({"a": ["de"]}, ["de"], ["de"], kinds=["natural", "short"])


def test_bad_arguments_stop_with_one_line(study, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        study.main(["--out", str(tmp_path), "--seeds", "1", "1"])
    assert stop.value.code == 2
    assert "--seeds: each seed once" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"--data: .*missing\.jsonl does not exist"):
        study.main(["--out", str(tmp_path), "--data", str(tmp_path / "missing.jsonl")])
    (tmp_path / "distill.jsonl").write_text("")
    with pytest.raises(SystemExit, match=r"--gold: .*nowhere\.jsonl does not exist"):
        study.main(["--out", str(tmp_path), "--gold", str(tmp_path / "nowhere.jsonl")])


def _jsonl(path, rows):
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_runs_that_do_not_score_the_same_items_stop_the_study(study, tmp_path, monkeypatch, capsys):
    """Every run, and the gold file, must hold the items the teacher's evaluation scored, in
    its order; else each would be scored against another item's label. Whatever is already on
    disk is reused: the course's commands are not run again (here they must not run at all)."""
    asked = []
    monkeypatch.setattr(study, "_course", lambda *args: asked.append(args))
    out = tmp_path / "study"
    _jsonl(out / "distill.jsonl", [{"messages": []}])
    items = [("Guten Morgen", "de"), ("Bonjour", "fr")]
    _jsonl(out / "eval_teacher" / "predictions.jsonl", [{"text": t, "label": g, "gold": g} for t, g in items])
    (out / "seed_0").mkdir()
    (out / "seed_0" / "checkpoint.json").write_text("{}")
    gold = tmp_path / "gold.jsonl"
    _jsonl(gold, [{"text": t, "label": g} for t, g in items])
    args = ["--out", str(out), "--seeds", "0", "--gold", str(gold)]

    _jsonl(out / "eval_0" / "predictions.jsonl", [{"text": t, "label": g, "gold": g} for t, g in items[::-1]])
    with pytest.raises(SystemExit, match=r"eval_0/predictions\.jsonl does not score the same items as .*eval_teacher"):
        study.main(args)

    _jsonl(out / "eval_0" / "predictions.jsonl", [{"text": t, "label": "de", "gold": g} for t, g in items])
    _jsonl(gold, [{"text": t, "label": g} for t, g in items[:1]])
    (out / "study-settings.json").unlink()  # else the changed gold file is caught there (below)
    with pytest.raises(SystemExit, match=r"gold\.jsonl does not hold the items that .*eval_teacher scored"):
        study.main(args)

    _jsonl(gold, [{"text": t, "label": g} for t, g in items])
    (out / "study-settings.json").unlink()
    assert study.main(args) == 0
    printed = capsys.readouterr().out
    assert any(line.split() == ["seed", "0", "0.5000", "0.5000"] for line in printed.splitlines()), printed
    assert asked == []

    # what is on disk was made from this data, gold set and backend: another of any stops the study
    _jsonl(out / "distill.jsonl", [{"messages": [{"role": "user", "content": "x"}]}])
    with pytest.raises(SystemExit, match=r"holds a study made with other settings \(data_sha256\): use a new --out"):
        study.main(args)
    _jsonl(out / "distill.jsonl", [{"messages": []}])
    with pytest.raises(SystemExit, match=r"other settings \(backend\)"):
        study.main([*args, "--backend", "tinker"])
    _jsonl(gold, [{"text": t, "label": "ot"} for t, _ in items])  # a label corrected in the gold file
    with pytest.raises(SystemExit, match=r"other settings \(gold_sha256\)"):
        study.main(args)
    (out / "study-settings.json").unlink()  # a study from before the settings were recorded
    with pytest.raises(SystemExit, match=r"gold\.jsonl's labels are not those .*eval_teacher scored against"):
        study.main(args)
    assert asked == []


def test_paths_are_read_from_the_working_directory(study, tmp_path, monkeypatch):
    """--gold and --queries are read from where the script is run, as --out and --data are (the
    course's commands run from the project's root, so each gets an absolute path); a study whose
    queries file changed since its teacher data was made stops."""
    asked = []

    def course(*args):  # the student's evaluation writes its predictions; training writes nothing here
        asked.append(args)
        if args[0] == "evaluate":
            out = Path(args[args.index("--out") + 1])
            _jsonl(out / "predictions.jsonl", [{"text": "Guten Morgen", "label": "de", "gold": "de"}])

    monkeypatch.setattr(study, "_course", course)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"--queries: .*/mine\.jsonl does not exist"):
        study.main(["--out", "study", "--queries", "mine.jsonl"])
    _jsonl(tmp_path / "mine.jsonl", [{"text": "Guten Morgen"}])
    _jsonl(tmp_path / "gold.jsonl", [{"text": "Guten Morgen", "label": "de"}])
    _jsonl(tmp_path / "study" / "distill.jsonl", [{"messages": []}])
    _jsonl(tmp_path / "study" / "eval_teacher" / "predictions.jsonl", [{"text": "Guten Morgen", "label": "de", "gold": "de"}])
    assert study.main(["--out", "study", "--seeds", "0", "--queries", "mine.jsonl", "--gold", "gold.jsonl"]) == 0
    train, evaluate = asked
    assert train[:3] == ("train", "--data", str(tmp_path / "study" / "distill.jsonl"))
    assert evaluate[:3] == ("evaluate", "--data", str(tmp_path / "gold.jsonl"))

    _jsonl(tmp_path / "mine.jsonl", [{"text": "Bonjour"}])
    with pytest.raises(SystemExit, match=r"other settings \(queries_sha256\)"):
        study.main(["--out", "study", "--seeds", "0", "--queries", "mine.jsonl", "--gold", "gold.jsonl"])
