"""Tests for helpers.metrics: scores checked against small cases computed by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers.labels import LABELS
from helpers.metrics import (
    UNPARSED,
    Prediction,
    agreement,
    agreement_by,
    bootstrap_ci,
    compute_metrics,
    error_table,
)

IX = {label: i for i, label in enumerate(LABELS)}

# A case small enough to compute by hand.
GOLD = ["en", "en", "en", "de", "de", "fr"]
PRED = ["en", "en", "de", "de", None, "fr"]


def test_accuracy_and_per_label_scores_by_hand():
    m = compute_metrics(GOLD, PRED)
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    # en: 2 right, 1 taken for de, never wrongly predicted -> P 1, R 2/3, F1 0.8
    assert m["per_label"]["en"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    # de: 1 right, 1 unparsed (a miss), 1 en wrongly called de -> P 1/2, R 1/2
    assert m["per_label"]["de"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["per_label"]["fr"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1})
    assert m["per_label"]["zh"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # macro-F1 over the labels that occur (en, de, fr), not over 13 with ten zeros
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    assert m["labels"] == list(LABELS)
    json.dumps(m)  # plain JSON types only


def test_confusion_rows_are_true_columns_predicted_last_column_unparsed():
    m = compute_metrics(GOLD, PRED)
    cm = np.array(m["confusion"])
    assert cm.shape == (13, 14)
    assert m["confusion_columns"] == [*LABELS, UNPARSED]
    assert cm[IX["en"], IX["en"]] == 2
    assert cm[IX["en"], IX["de"]] == 1  # true en, predicted de (not the other way round)
    assert cm[IX["de"], IX["en"]] == 0
    assert cm[IX["de"], -1] == 1  # the unparsed answer sits in the extra column
    assert m["unparsed"] == 1 == cm[:, -1].sum()
    assert cm.sum() == m["n"]  # nothing dropped
    assert cm.sum(axis=1)[IX["de"]] == m["per_label"]["de"]["support"]


def test_unparsed_counts_as_wrong_never_dropped():
    all_unparsed = compute_metrics(["de", "en", "ot"], [None, None, None])
    assert all_unparsed["accuracy"] == 0.0
    assert all_unparsed["unparsed"] == 3
    assert all_unparsed["n"] == 3
    assert all_unparsed["macro_f1"] == 0.0
    # Predictions objects are accepted as they are
    m = compute_metrics(["de"], [Prediction("de", "Final Answer: de")])
    assert m["accuracy"] == 1.0


def test_metrics_refuse_mismatched_or_unknown_inputs():
    with pytest.raises(ValueError, match="2 gold labels but 1"):
        compute_metrics(["de", "en"], ["de"])
    with pytest.raises(ValueError, match="not one of the 13"):
        compute_metrics(["it"], ["de"])
    with pytest.raises(ValueError, match="neither"):
        compute_metrics(["de"], ["it"])
    with pytest.raises(ValueError, match="no examples"):
        compute_metrics([], [])


def test_bootstrap_interval_contains_accuracy_and_is_reproducible():
    rng = np.random.default_rng(1)
    gold = list(rng.choice(LABELS, size=200))
    pred = [g if rng.random() < 0.8 else None for g in gold]
    a, b = compute_metrics(gold, pred), compute_metrics(gold, pred)
    low, high = a["accuracy_ci"]
    assert low <= a["accuracy"] <= high
    assert 0.0 < high - low < 0.2
    assert a["accuracy_ci"] == b["accuracy_ci"]  # seeded
    assert bootstrap_ci([1, 0] * 100, seed=1) != bootstrap_ci([1, 0] * 100, seed=2)
    # more data, narrower interval
    wide = bootstrap_ci([1, 0, 1, 1] * 10)
    narrow = bootstrap_ci([1, 0, 1, 1] * 1000)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    # every answer right (or wrong): each resample is the same, the bootstrap's interval would be
    # (1.0, 1.0), certainty; it is Wilson's score interval instead, n / (n + 1.96**2) to 1
    assert bootstrap_ci([1, 1, 1]) == (pytest.approx(3 / (3 + 1.959964**2)), 1.0)  # about 0.44 to 1
    assert bootstrap_ci([True] * 12) == (pytest.approx(0.7575, abs=1e-4), 1.0)
    assert bootstrap_ci([0] * 12) == (0.0, pytest.approx(1 - 0.7575, abs=1e-4))
    assert bootstrap_ci([1] * 12, level=0.99)[0] < bootstrap_ci([1] * 12)[0] < bootstrap_ci([1] * 1200)[0] < 1
    assert compute_metrics(["de"] * 12, ["de"] * 12)["accuracy_ci"] == [pytest.approx(0.7575, abs=1e-4), 1.0]
    # settings named, not an IndexError or numpy's message from deep inside
    with pytest.raises(ValueError, match="n_resamples must be a whole number >= 1, got 0"):
        bootstrap_ci([1, 0], n_resamples=0)
    with pytest.raises(ValueError, match=r"level must be between 0 and 1 \(0.95 for a 95% interval\), got 95"):
        bootstrap_ci([1, 0], level=95)


def test_agreement_by_group_by_hand():
    kinds = ["short", "natural", "short", "code", "short"]
    student = ["de", "en", None, "ot", "fr"]
    teacher = ["de", "en", None, "en", "ot"]  # two unparsed answers agree, as in agreement()
    assert agreement_by(kinds, student, teacher) == {
        "code": {"n": 1, "agreement": 0.0},
        "natural": {"n": 1, "agreement": 1.0},
        "short": {"n": 3, "agreement": pytest.approx(2 / 3)},
    }
    with pytest.raises(ValueError, match="4 groups for 5 and 5 answers"):
        agreement_by(kinds[:4], student, teacher)
    # an item without a kind (row.get("kind") is None) has a group of its own, not a TypeError
    by = agreement_by([None, "short"], ["de", "en"], ["de", "fr"])
    assert by == {"short": {"n": 1, "agreement": 0.0}, None: {"n": 1, "agreement": 1.0}} and list(by)[-1] is None


def test_agreement_and_cohens_kappa_by_hand():
    a = ["en", "en", "de", "de"]
    b = ["en", "de", "de", "de"]
    # observed 3/4; chance = 0.5*0.25 + 0.5*0.75 = 0.5; kappa = (0.75 - 0.5) / (1 - 0.5)
    r = agreement(a, b)
    assert r["agreement"] == pytest.approx(0.75)
    assert r["kappa"] == pytest.approx(0.5)
    assert agreement(a, a)["kappa"] == pytest.approx(1.0)
    assert agreement([None, "de"], [None, "de"])["agreement"] == 1.0  # unparsed is one category
    assert math.isnan(agreement(["de", "de"], ["de", "de"])["kappa"])  # undefined, not an error


def test_error_table_lists_rows_where_any_predictor_is_wrong():
    texts = ["one", "two", "three", "four"]
    gold = ["en", "de", "fr", "ot"]
    rows = error_table(texts, gold, {"teacher": ["en", "de", "es", "ot"],
                                     "student": ["en", None, "es", "ot"]})
    assert rows == [
        {"index": 1, "text": "two", "gold": "de", "teacher": "de", "student": None},
        {"index": 2, "text": "three", "gold": "fr", "teacher": "es", "student": "es"},
    ]
    with pytest.raises(ValueError, match="3 predictions for 4 texts"):
        error_table(texts, gold, {"x": ["en"] * 3})


