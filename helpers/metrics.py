"""Scoring predictions against gold labels, and two predictors against each other.

The metrics of prompt distillation, on their own: they need numpy, scikit-learn and the
label set of :mod:`helpers.labels`, nothing else, so they copy into another project with
``labels.py`` beside them (or your own ``LABELS``). :mod:`helpers.evaluate` makes the
predictions and re-exports everything here.

An answer that named no label is ``None`` ("unparsed"): it counts as wrong and has a
column of its own in the confusion matrix. It is never dropped, because dropping it
would flatter exactly the models that fail most.

Example
-------
>>> gold = ["de", "en", "en", "ot"]
>>> pred = ["de", "en", "fr", None]          # None: an answer that named no label
>>> m = compute_metrics(gold, pred)
>>> m["accuracy"], m["unparsed"]
(0.5, 1)
>>> m["confusion"][3]                        # row "en": one right, one taken for "fr"
[0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
>>> agreement(["de", "en", "fr"], ["de", "en", "en"])["agreement"]
0.6666666666666666
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .labels import LABELS

UNPARSED = "unparsed"
"""Name of the confusion matrix's extra last column: answers that named no label."""

BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class Prediction:
    """One predictor's answer to one query: the parsed ``label`` (or ``None``) and the ``raw`` text."""

    label: str | None
    raw: str


def labels_of(predictions: Sequence[Prediction | str | None]) -> list[str | None]:
    """The labels of a list of predictions (plain labels and ``None`` pass through)."""
    return [p.label if isinstance(p, Prediction) else p for p in as_list(predictions, "predictions")]


def as_list(items: Sequence, what: str) -> list:
    """``items`` as a list; a single string (which would count as a list of characters) is refused."""
    if isinstance(items, str | bytes):
        raise ValueError(f"{what}: expected a list, got a single string {items[:40]!r}")
    return list(items)


def _check_answers(answers: Sequence[str | None], what: str) -> None:
    for p in answers:
        if p is not None and p not in LABELS:
            raise ValueError(f"{what} {p!r} is neither one of the {len(LABELS)} labels nor None (unparsed)")


def _check_pair(gold: Sequence[str], pred: Sequence[str | None]) -> tuple[list[str], list[str | None]]:
    gold, pred = as_list(gold, "gold labels"), labels_of(pred)
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    if not gold:
        raise ValueError("no examples to score")
    for g in gold:
        if g not in LABELS:
            raise ValueError(f"gold label {g!r} is not one of the {len(LABELS)} labels")
    _check_answers(pred, "prediction")
    return gold, pred


def _with_unparsed(pred: Sequence[str | None]) -> list[str]:
    return [UNPARSED if p is None else p for p in pred]


def bootstrap_ci(correct: Sequence[bool] | np.ndarray, n_resamples: int = BOOTSTRAP_RESAMPLES,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean (here: accuracy), seeded and reproducible; the
    Wilson score interval when every outcome is the same.

    When every answer is right (or every one wrong) each resample is too, and the bootstrap
    gives ``(1.0, 1.0)``: certainty that 12 right answers out of 12 cannot give. The interval
    is then Wilson's score interval for that proportion, which is not empty at the edge
    (12 of 12: about 0.76 to 1; 3 of 3: about 0.44 to 1).

    >>> bootstrap_ci([1, 1, 1, 0] * 25) == bootstrap_ci([1, 1, 1, 0] * 25)
    True
    >>> [round(bound, 3) for bound in bootstrap_ci([1] * 12)]   # Wilson's, not (1.0, 1.0)
    [0.758, 1.0]
    """
    x = np.asarray(correct, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no examples to resample")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, numbers.Integral) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a whole number >= 1, got {n_resamples!r}")
    if not (isinstance(level, numbers.Real) and 0 < level < 1):
        raise ValueError(f"level must be between 0 and 1 (0.95 for a 95% interval), got {level!r}")
    if np.all(x == x[0]) and x[0] in (0.0, 1.0):  # every resample would be the same: no spread to see
        return _wilson_at_the_edge(bool(x[0]), x.size, level)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    step = max(1, 2_000_000 // x.size)  # resample in chunks: bounded memory for big sets
    for start in range(0, n_resamples, step):
        k = min(step, n_resamples - start)
        means[start : start + k] = x[rng.integers(0, x.size, size=(k, x.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    return float(lo), float(hi)


def _wilson_at_the_edge(all_correct: bool, n: int, level: float) -> tuple[float, float]:
    """Wilson's score interval for ``n`` outcomes all correct (``all_correct``) or all wrong.

    At a proportion of 1 the interval is ``[n / (n + z**2), 1]`` (``z`` the normal quantile of
    ``level``, 1.96 for 95%), and mirrored at 0; written so that the edge is exactly 1 or 0.
    """
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    inner = n / (n + z * z)
    return (inner, 1.0) if all_correct else (0.0, 1.0 - inner)


def compute_metrics(gold: Sequence[str], pred: Sequence[str | None | Prediction], *,
                    n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Accuracy with a bootstrap interval, the confusion matrix, per-label scores, macro-F1.

    An unparsed prediction (``None``) counts as wrong: it lowers accuracy and the
    recall of its true label, and it is counted in the confusion matrix's extra column.

    Returns a dict in the shape of ``metrics.json`` (README, The command line):

    - ``n``, ``accuracy``, ``accuracy_ci``: ``[low, high]``, a percentile bootstrap
      95% interval (``n_resamples`` resamples, ``seed``), or Wilson's score interval when
      every prediction is right or every one wrong (:func:`bootstrap_ci`);
    - ``labels``: :data:`~helpers.labels.LABELS`, the order of rows and columns;
    - ``confusion``: a 13 x 14 list of lists. Row ``i`` is the true label
      ``labels[i]``, column ``j < 13`` the predicted label ``labels[j]``, and the
      **last column** (``confusion_columns[-1] == "unparsed"``) counts answers that
      named no label;
    - ``confusion_columns``: ``labels`` plus ``"unparsed"``; ``unparsed``: their count;
    - ``per_label``: ``{label: {precision, recall, f1, support}}`` (0 where undefined);
    - ``macro_f1``: mean F1 over the labels that occur in ``gold`` or ``pred``.

    >>> m = compute_metrics(["en", "en", "de"], ["en", "de", "de"])
    >>> m["per_label"]["de"]["precision"], m["per_label"]["en"]["recall"]
    (0.5, 0.5)
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    gold, pred = _check_pair(gold, pred)
    y_pred = _with_unparsed(pred)
    columns = [*LABELS, UNPARSED]
    cm = confusion_matrix(gold, y_pred, labels=columns)[: len(LABELS)]  # no gold is "unparsed"
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, y_pred, labels=list(LABELS), zero_division=0)
    present = [label for label in LABELS if label in gold or label in pred]
    macro = f1_score(gold, y_pred, labels=present, average="macro", zero_division=0)
    correct = np.array([g == p for g, p in zip(gold, pred, strict=True)])
    return {
        "n": len(gold),
        "accuracy": float(correct.mean()),
        "accuracy_ci": list(bootstrap_ci(correct, n_resamples=n_resamples, seed=seed)),
        "labels": list(LABELS),
        "confusion": cm.astype(int).tolist(),
        "confusion_columns": columns,
        "unparsed": int(sum(p is None for p in pred)),
        "per_label": {
            label: {"precision": float(precision[i]), "recall": float(recall[i]),
                    "f1": float(f1[i]), "support": int(support[i])}
            for i, label in enumerate(LABELS)
        },
        "macro_f1": float(macro),
    }


def agreement(a: Sequence[str | None | Prediction], b: Sequence[str | None | Prediction]) -> dict:
    """How often two predictors give the same answer, raw and corrected for chance.

    ``agreement`` is the share of identical answers; ``kappa`` is Cohen's kappa
    (scikit-learn), which discounts the agreement two predictors would reach by
    chance given how often each uses each label. Unparsed answers (``None``) are
    one more category here: two unparsed answers agree. ``kappa`` is NaN when it
    is undefined (both predictors always give one and the same answer).

    >>> agreement(["de", "en", "en", "ot"], ["de", "en", "fr", "ot"])["agreement"]
    0.75
    """
    from sklearn.metrics import cohen_kappa_score

    a, b = labels_of(a), labels_of(b)
    _check_answers(a + b, "answer")  # kappa would quietly drop pairs with a label outside its list
    if len(a) != len(b):
        raise ValueError(f"{len(a)} answers against {len(b)}")
    if not a:
        raise ValueError("no answers to compare")
    x, y = _with_unparsed(a), _with_unparsed(b)
    same = float(np.mean([p == q for p, q in zip(x, y, strict=True)]))
    if len(set(x) | set(y)) < 2:
        kappa = float("nan")  # one category only: chance agreement is 1, kappa is 0/0
    else:
        kappa = float(cohen_kappa_score(x, y, labels=[*LABELS, UNPARSED]))
    return {"n": len(x), "agreement": same, "kappa": kappa}


def agreement_by(groups: Sequence[str], a: Sequence[str | None | Prediction],
                 b: Sequence[str | None | Prediction]) -> dict[str, dict]:
    """:func:`agreement`'s share of identical answers within each group of items.

    ``groups`` names each item's group (for the gold sets, its ``kind``; items without
    one, ``None``, form a group of their own, listed last). Returns
    ``{group: {"n": items, "agreement": share}}``, groups sorted by name. Overall
    agreement hides where two predictors part; this shows it.

    >>> agreement_by(["short", "short", "natural"], ["de", "ot", "en"], ["de", "fr", "en"])
    {'natural': {'n': 1, 'agreement': 1.0}, 'short': {'n': 2, 'agreement': 0.5}}
    """
    groups, a, b = as_list(groups, "groups"), labels_of(a), labels_of(b)
    _check_answers(a + b, "answer")
    if not len(groups) == len(a) == len(b):
        raise ValueError(f"{len(groups)} groups for {len(a)} and {len(b)} answers")
    members: dict[str, list[bool]] = {}
    for group, p, q in zip(groups, a, b, strict=True):
        members.setdefault(group, []).append(p == q)
    ordered = sorted(members.items(), key=lambda item: (item[0] is None, item[0] if item[0] is not None else ""))
    return {group: {"n": len(same), "agreement": sum(same) / len(same)} for group, same in ordered}


def error_table(texts: Sequence[str], gold: Sequence[str],
                preds: Mapping[str, Sequence[str | None | Prediction]]) -> list[dict]:
    """Rows where at least one predictor is wrong: ``{"index", "text", "gold", name: label, ...}``.

    ``preds`` maps a predictor's name (``"teacher"``, ``"student"``, ...) to its
    labels (``None`` for unparsed) in the order of ``texts``.

    >>> error_table(["a b c", "x y z"], ["en", "de"], {"teacher": ["en", "en"], "student": ["en", None]})
    [{'index': 1, 'text': 'x y z', 'gold': 'de', 'teacher': 'en', 'student': None}]
    """
    texts, gold = as_list(texts, "texts"), as_list(gold, "gold labels")
    columns = {name: labels_of(p) for name, p in preds.items()}
    for name, labels in columns.items():
        if len(labels) != len(texts):
            raise ValueError(f"{name}: {len(labels)} predictions for {len(texts)} texts")
    if len(gold) != len(texts):
        raise ValueError(f"{len(gold)} gold labels for {len(texts)} texts")
    rows = []
    for i, (text, g) in enumerate(zip(texts, gold, strict=True)):
        answers = {name: labels[i] for name, labels in columns.items()}
        if any(answer != g for answer in answers.values()):
            rows.append({"index": i, "text": text, "gold": g, **answers})
    return rows
