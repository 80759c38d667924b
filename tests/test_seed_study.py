"""scripts/seed_study.py: per-run and voted scores against hand-computed cases, and its errors."""

from __future__ import annotations

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
