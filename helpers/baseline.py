"""The classic baseline: character n-grams and logistic regression, no LLM at all.

Prompt distillation trains an LLM student on the teacher's labels. The honest
question to ask next to it is whether a plain text classifier, trained on the
*same* teacher labels, would do as well. This module is that classifier: a
scikit-learn :class:`~sklearn.pipeline.Pipeline` of TF-IDF over character
n-grams (1 to 4 characters, within word boundaries, ``char_wb``) and a
:class:`~sklearn.linear_model.LogisticRegression`. Character n-grams suit
language identification well (scripts, diacritics, short function words), and
the whole model trains in seconds on a few thousand texts.

It learns whatever the labels say, so it learns the teacher's policy only as far
as that policy shows up in characters: it has no way to read the rule "romanised
Hindi is ``ot``" except from examples.

Example
-------
>>> texts = ["Guten Morgen, wie geht es dir?", "Good morning, how are you?",
...          "Bonjour, comment ça va ?", "Wie spät ist es jetzt?",
...          "What time is it now?", "Quelle heure est-il ?"]
>>> labels = ["de", "en", "fr", "de", "en", "fr"]
>>> model = train_baseline(texts, labels)
>>> predict(model, ["Wie geht es dir heute?"])
['de']
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from .dataio import DataError, json_safe, read_json, text_list, write_text, write_with
from .labels import LABELS

MODEL_FILE = "baseline.joblib"
META_FILE = "meta.json"
KIND = "tfidf-char_wb-1-4+logistic-regression"


def make_pipeline(seed: int = 0, C: float = 10.0, max_features: int = 50_000):
    """The untrained pipeline: char_wb 1-4-gram TF-IDF, then logistic regression.

    ``sublinear_tf`` damps repeated n-grams in long texts; ``C=10`` (weak
    regularisation) suits many sparse features; ``lbfgs`` fits one multinomial
    model over all labels. The 50,000 most frequent n-grams and ``tol=1e-3`` keep
    training to seconds on the course's 14,660 queries at no loss of accuracy (trained
    on the pool's reference labels: 0.951 on ``data/test_gold.jsonl`` in 12 s, against
    0.943 in 26 s with every n-gram kept; measured on this 2-core machine).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return Pipeline([
        ("tfidf", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True,
                                  max_features=max_features)),
        ("logreg", LogisticRegression(C=C, tol=1e-3, max_iter=1000, random_state=seed)),
    ])


def train_baseline(texts: Sequence[str], labels: Sequence[str], seed: int = 0):
    """Fit the baseline on ``texts`` and their (teacher's) ``labels``; returns the pipeline.

    ``texts`` are strings or objects with a string ``"text"``, as :func:`predict` takes them.
    Raises :class:`~helpers.dataio.DataError` when the inputs cannot train a classifier: a
    single string (it would be a list of characters), different lengths, no rows, a label
    outside the 13, or only one label.

    >>> model = train_baseline(["hello there my friend", "hola amigo mío"], ["en", "es"])
    >>> [str(c) for c in model.classes_]
    ['en', 'es']
    """
    texts, labels = text_list(texts, "baseline: texts"), list(labels)
    if len(texts) != len(labels):
        raise DataError(f"baseline: {len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise DataError("baseline: no training examples")
    for i, label in enumerate(labels, start=1):
        if label not in LABELS:
            raise DataError(f"baseline: example {i} label {label!r} is not one of the {len(LABELS)} labels")
    if len(set(labels)) < 2:
        raise DataError(f"baseline: all examples have the label {labels[0]!r}; a classifier needs two or more")
    from threadpoolctl import threadpool_limits

    model = make_pipeline(seed=seed)
    # One BLAS thread: the fit makes many small matrix products, and OpenBLAS's
    # threads spin-waiting on a busy 2-core machine made it three times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        model.fit(texts, labels)
    return model


def predict(model, texts: Sequence[str]) -> list[str]:
    """The baseline's label for each text (always one of the labels it was trained on)."""
    texts = text_list(texts)
    if not texts:
        return []
    return [str(label) for label in model.predict(texts)]


def save_baseline(model, directory: str | os.PathLike, *, backend: str | None = None,
                  teacher_model: str | None = None, **extra) -> Path:
    """Write ``baseline.joblib`` and a small ``meta.json`` to ``directory``; returns the folder.

    ``backend`` and ``teacher_model``, when given, say where the labels it learnt came from
    (``"local"``: the offline stand-in teacher; ``"tinker"``): the baseline itself never uses
    a backend, so only its ``meta.json`` can tell (:func:`labelled_offline`). ``extra`` keys
    (for example ``data="run/distill.jsonl"``) go into ``meta.json`` too: JSON
    values (numpy numbers are written as Python's, NaN as null, see
    :func:`~helpers.dataio.json_safe`); another is refused, naming its key, before anything
    is written. The joblib file is a pickle: load only baselines you made
    yourself.
    """
    import joblib
    import sklearn

    directory = Path(directory)
    labelled_by = {key: value for key, value in (("backend", backend), ("teacher_model", teacher_model))
                   if value is not None}
    for key, value in labelled_by.items():
        if not isinstance(value, str):
            raise DataError(f"save_baseline: {key} must be a string such as 'local', got {value!r}")
    extra = {**labelled_by, **extra}
    logreg = model.named_steps["logreg"]
    meta = json_safe({
        "kind": KIND,
        "labels": [str(c) for c in logreg.classes_],
        "n_features": int(len(model.named_steps["tfidf"].vocabulary_)),
        "sklearn_version": sklearn.__version__,
        "seed": logreg.random_state,
        **extra,
    })
    for key in extra:
        try:
            json.dumps(meta[key])  # json_safe made NaN null: what is left to fail is a value JSON has not
        except (TypeError, ValueError):
            raise DataError(f"save_baseline: {key}={extra[key]!r} cannot go into {META_FILE} (not a JSON value)") from None
    write_with(directory / MODEL_FILE, lambda tmp: joblib.dump(model, tmp))  # makes the folder, or a one-line DataError
    write_text(directory / META_FILE, json.dumps(meta, indent=1) + "\n")
    return directory


def load_baseline(directory: str | os.PathLike):
    """Load a baseline saved by :func:`save_baseline`.

    Raises :class:`~helpers.dataio.DataError` with a one-line reason when the
    folder or its ``baseline.joblib`` is missing or unreadable.
    """
    import joblib

    directory = Path(directory)
    path = directory / MODEL_FILE
    if not directory.is_dir():
        raise DataError(f"{directory}: no such folder (expected a baseline saved by save_baseline)")
    if not path.exists():
        raise DataError(f"{path}: no such file; train a baseline first (helpers.baseline.save_baseline "
                        "or `python -m helpers run`)")
    try:
        model = joblib.load(path)
    except Exception as e:  # a truncated or foreign file: one line, not a pickle traceback
        raise DataError(f"{path}: cannot load the baseline ({e.__class__.__name__}: {e})") from None
    if not hasattr(model, "predict"):
        raise DataError(f"{path}: does not hold a trained classifier")
    return model


def read_meta(directory: str | os.PathLike) -> dict:
    """The ``meta.json`` of a saved baseline (an empty dict when there is none, or it is empty); a
    broken one (malformed JSON, not UTF-8, unreadable, not a JSON object) is a one-line
    :class:`~helpers.dataio.DataError` naming the file, and the line of malformed JSON."""
    path = Path(directory) / META_FILE
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return {}
    meta = read_json(path, fix="save the baseline again")
    if not isinstance(meta, dict):
        raise DataError(f"{path}: not a baseline's {META_FILE} (not a JSON object); save the baseline again")
    return meta


def labelled_offline(directory: str | os.PathLike) -> bool | None:
    """Whether the saved baseline in ``directory`` learnt the offline stand-in teacher's labels:
    True when its ``meta.json`` records the backend ``"local"``, False for another, None when it
    records none (saved without ``backend``, as before it was recorded).

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> model = train_baseline(["hello there my friend", "hola amigo mío"], ["en", "es"])
    >>> labelled_offline(save_baseline(model, folder, backend="local"))
    True
    """
    backend = read_meta(directory).get("backend")
    return None if backend is None else backend == "local"
