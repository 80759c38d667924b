"""Step 3 of prompt distillation: how good is each predictor, and what does the prompt cost?

Four predictors answer the same gold-labelled queries through one function,
:func:`predict`:

==================  ============================================================
``"teacher"``       the teacher model, *with* the long prompt (what we distil)
``"base"``          the student's base model, *without* the prompt (before training)
``"student:DIR"``   the trained student, without the prompt (``DIR/checkpoint.json``)
``"baseline:DIR"``  character n-grams + logistic regression (:mod:`helpers.baseline`)
==================  ============================================================

Every model answer goes through :func:`helpers.labels.parse_answer`; an answer
it cannot read is kept as ``None`` ("unparsed") and counts as wrong. It is never
dropped, because dropping it would flatter exactly the models that fail most.

The metrics (:func:`compute_metrics`, :func:`agreement`, ...) live in :mod:`helpers.metrics`,
which needs only numpy, scikit-learn and the labels, and are re-exported here; the
cost side comes from the models' own tokenizers (:func:`prompt_tokens_per_query`,
:func:`cost_table`, :func:`measure_latency`). Pictures are in :mod:`helpers.plots`.

The command line ``python -m helpers evaluate`` is :func:`add_arguments` and
:func:`main`.

Example
-------
>>> parse_spec("student:runs/x"), predictor_name("baseline:runs/b")   # what --predictor takes
(('student', 'runs/x'), 'baseline')
>>> predict("teacher", ["Guten Morgen, wie geht es dir?"], progress=False)[0].label  # doctest: +SKIP
'de'

Scoring the predictions is :mod:`helpers.metrics`'s example (``compute_metrics``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import numbers
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from .backend import context_length
from .dataio import (
    DataError,
    check_writable,
    json_safe,
    read_gold,
    text_list,
    write_jsonl,
    write_text,
)
from .generate import StallWatch, ask_with_retries, inner_future, result_with_retries
from .labels import LABELS, parse_answer
from .metrics import (  # noqa: F401 (re-exported: the course imports the metrics from here)
    BOOTSTRAP_RESAMPLES,
    UNPARSED,
    Prediction,
    agreement,
    agreement_by,
    bootstrap_ci,
    compute_metrics,
    error_table,
    labels_of,
)
from .prompt import DEFAULT_PROMPT, student_messages, teacher_messages
from .render import decode_answer, model_input, sampling_params
from .train import read_checkpoint_info

# ---------------------------------------------------------------- settings

TINKER_MODEL = "Qwen/Qwen3-30B-A3B"
"""On Tinker, the teacher and the student's base are the same model: only the prompt differs."""

LOCAL_TEACHER = "local/policy-teacher"
"""Offline teacher: the rule-based stand-in (:mod:`helpers.teacher`), *not* an LLM."""

LOCAL_BASE = "local/tiny"
"""Offline student base: the tiny randomly initialised model of :mod:`helpers.local.model`."""

DEFAULT_MODELS: dict[str, dict[str, str]] = {
    "local": {"teacher": LOCAL_TEACHER, "base": LOCAL_BASE},
    "tinker": {"teacher": TINKER_MODEL, "base": TINKER_MODEL},
}

TEACHER_MAX_TOKENS = 256  # room for a short line of reasoning, then "Final Answer: xx"
STUDENT_MAX_TOKENS = 8  # a distilled student answers with the bare label and stops

PRICES: dict[str, float] = {
    "teacher": 0.20,
    "student": 0.20,
    "sampled": 0.60,
    "train": 0.60,
}
"""EXAMPLE prices in USD per million tokens: edit them to your provider's price list.

``teacher`` and ``student``: prompt tokens read by each model; ``sampled``: tokens
written (answers); ``train``: tokens processed by fine-tuning. They are placeholders
for the arithmetic, not anyone's published prices. On Tinker the teacher and the
student run on the same base model, so by default they cost the same per token and
the saving per query comes from the prompt tokens a student no longer sends and the
reasoning it no longer writes.
"""
_SHIPPED_PRICES = MappingProxyType(dict(PRICES))  # what PRICES holds until someone edits it


def prices_note(prices: Mapping[str, float] | None = None) -> str:
    """What to call ``prices`` (default :data:`PRICES`): EXAMPLE prices while they are the ones
    the course ships with, the user's once edited or given."""
    if dict(PRICES if prices is None else prices) == _SHIPPED_PRICES:
        return "EXAMPLE prices: edit helpers.evaluate.PRICES"
    return "prices given by the caller" if prices is not None else "prices from helpers.evaluate.PRICES"

# ---------------------------------------------------------------- predictors


def default_models(backend: str) -> dict[str, str]:
    """``{"teacher": ..., "base": ...}``: the models a backend uses unless told otherwise."""
    if backend not in DEFAULT_MODELS:
        raise DataError(f"setting: backend must be one of {', '.join(DEFAULT_MODELS)}, got {backend!r}")
    return dict(DEFAULT_MODELS[backend])


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split a predictor spec into ``(kind, folder)``; ``kind`` is teacher, base, student or baseline.

    >>> parse_spec("student:runs/a/student")
    ('student', 'runs/a/student')
    >>> parse_spec("teacher")
    ('teacher', None)
    """
    if not isinstance(spec, str):
        raise DataError(f"predictor: expected a string such as 'teacher', got {type(spec).__name__}")
    kind, sep, folder = spec.partition(":")
    if kind in ("teacher", "base") and not sep:
        return kind, None
    if kind in ("student", "baseline") and sep and folder:
        return kind, folder
    raise DataError(f"predictor: unknown {spec!r}; use teacher, base, student:DIR or baseline:DIR")


def predictor_name(spec: str) -> str:
    """The short name of a predictor spec, used in file names: ``student:runs/x`` -> ``student``."""
    return parse_spec(spec)[0]


def _run_bounded(count: int, submit: Callable[[int], Any], finish: Callable[[int, Any], None],
                 concurrency: int) -> None:
    """Submit ``submit(i)`` for ``i < count`` with at most ``concurrency`` in flight, in order.

    The first request goes alone: a model that cannot answer at all (its context too short
    for the prompt, no chat template, ...) fails once, not once per request in flight.
    Then the oldest future is awaited first; futures that are already done after it are
    collected too before new ones are submitted, so a backend that batches calls
    arriving together (the local one) sees full batches, and Tinker sees a steady
    stream of requests. A request that fails transiently is sent again
    (:func:`helpers.generate.result_with_retries`); any other error stops the run.
    """
    concurrency = max(1, int(concurrency))
    in_flight: list[tuple[int, Any]] = []
    nxt = 0
    if count:
        finish(0, ask_with_retries(lambda: submit(0)))
        nxt = 1
    while nxt < count or in_flight:
        while nxt < count and len(in_flight) < concurrency:
            in_flight.append((nxt, submit(nxt)))
            nxt += 1
        i, fut = in_flight.pop(0)
        finish(i, result_with_retries(fut, lambda i=i: submit(i)))
        while in_flight and _is_done(in_flight[0][1]):
            i, fut = in_flight.pop(0)
            finish(i, result_with_retries(fut, lambda i=i: submit(i)))


def _is_done(future) -> bool:
    """Whether a future has finished, without waiting: Tinker's ``APIFuture`` hands out its
    ``concurrent.futures.Future`` with ``.future()`` (its own ``.done()`` is deprecated)."""
    inner = inner_future(future)
    return bool(callable(getattr(inner, "done", None)) and inner.done())


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    # smoothing=0: the rate shown is the average since the start, as the summaries print it
    return tqdm(total=total, desc=desc, unit="query", disable=not enabled, leave=enabled, smoothing=0)


def predict_with_client(
    client,
    texts: Sequence[str],
    with_prompt: bool,
    *,
    prompt: str = DEFAULT_PROMPT,
    max_tokens: int | None = None,
    tokenizer=None,
    progress: bool = True,
    concurrency: int = 64,
    desc: str | None = None,
    max_context: int | None = None,
) -> list[Prediction]:
    """Ask a ready-made sampling client about every text, greedily; one :class:`Prediction` each.

    A text too long for the model's context (``max_context``, or the client's own
    ``max_context``, which the local clients have) is not asked: it counts as unparsed, with
    the reason as its raw answer and one notice on stderr, and the others are still asked.

    Parameters
    ----------
    client : a sampling client (Tinker's or the local backend's).
    texts : the queries.
    with_prompt : True: the teacher's conversation (``prompt`` as system message);
        False: the student's (the query alone).
    prompt : the teacher prompt when ``with_prompt``.
    max_tokens : answer length limit; default 256 with the prompt, 8 without.
    tokenizer : default ``client.get_tokenizer()``.
    progress : show a tqdm progress bar.
    concurrency : sample calls in flight at once.
    max_context : the model's context in tokens (:func:`helpers.backend.context_length` asks
        a Tinker server for it; :func:`predict` does); default the client's ``max_context``.
    """
    texts = text_list(texts)
    tokenizer = tokenizer if tokenizer is not None else client.get_tokenizer()
    limit = max_tokens or (TEACHER_MAX_TOKENS if with_prompt else STUDENT_MAX_TOKENS)
    params = sampling_params(tokenizer, limit)
    out: list[Prediction | None] = [None] * len(texts)

    def messages(text: str) -> list[dict]:
        return teacher_messages(text, prompt) if with_prompt else student_messages(text)

    asked = list(range(len(texts)))
    rendered: dict[int, Any] = {}  # prompts rendered for the length check, each used once by submit
    context = max_context if max_context is not None else getattr(client, "max_context", None)
    if context is not None:  # a query the model cannot take is its unparsed answer, not the end of the run
        rendered = {i: model_input(tokenizer, messages(text)) for i, text in enumerate(texts)}
        # as Tinker does, the prompt and the longest answer asked for must fit together
        too_long = [i for i in asked if rendered[i].length + limit > context]
        for i in too_long:
            out[i] = Prediction(None, f"(not asked: {rendered.pop(i).length} tokens and up to {limit} for the answer, "
                                      f"over the model's context of {context})")
        if too_long:
            print(f"evaluation: {len(too_long)} of {len(texts)} queries (the first: number {too_long[0] + 1}) "
                  f"do not fit the model's context of {context} tokens with room for a {limit}-token answer; "
                  f"they count as unparsed", file=sys.stderr)
            asked = [i for i in asked if i in rendered]
    bar = _progress_bar(len(texts), desc or ("with prompt" if with_prompt else "without prompt"), progress)
    bar.update(len(texts) - len(asked))

    def submit(k: int):
        i = asked[k]
        prompt = rendered.pop(i, None)  # rendered for the length check; rendered here when not, or when resent
        if prompt is None:
            prompt = model_input(tokenizer, messages(texts[i]))
        return client.sample(prompt, 1, params)

    def finish(k: int, response) -> None:
        raw = decode_answer(tokenizer, response.sequences[0].tokens)
        out[asked[k]] = Prediction(parse_answer(raw), raw)
        watch.tick()
        bar.update(1)

    watch = StallWatch("evaluation", lambda: "predictions are not saved until the end, so it starts again")
    try:
        with watch:
            _run_bounded(len(asked), submit, finish, concurrency)
    finally:
        bar.close()
    return out  # type: ignore[return-value]


def sampling_client_for(spec: str, service, teacher_model: str | None = None, base_model: str | None = None):
    """The sampling client behind a model predictor spec (teacher, base or student:DIR)."""
    kind, folder = parse_spec(spec)
    backend = getattr(service, "backend", "tinker")
    if kind in ("teacher", "base"):
        return service.create_sampling_client(base_model=model_of(spec, service, teacher_model, base_model)).result()
    if kind == "student":
        info = read_checkpoint_info(folder)
        path = info["sampler_path"]
        if path.startswith("local://") and backend != "local":
            raise DataError(f"{folder}/checkpoint.json: the student was trained on the local backend; "
                            "evaluate it with --backend local")
        if path.startswith("tinker://") and backend == "local":
            raise DataError(f"{folder}/checkpoint.json: the student was trained on Tinker; "
                            "evaluate it with --backend tinker")
        return service.create_sampling_client(model_path=path).result()
    raise DataError(f"predictor: {spec!r} is not a sampling model")


def predict(
    spec: str,
    texts: Sequence[str],
    service=None,
    progress: bool = True,
    concurrency: int = 64,
    *,
    teacher_model: str | None = None,
    base_model: str | None = None,
    prompt: str = DEFAULT_PROMPT,
    max_tokens: int | None = None,
) -> list[Prediction]:
    """Every text's answer from the predictor ``spec``, in order.

    Parameters
    ----------
    spec : ``"teacher"``, ``"base"``, ``"student:DIR"`` or ``"baseline:DIR"``.
    texts : the queries.
    service : a service client from :func:`helpers.connect`; default ``connect()``.
        Not needed for a baseline.
    progress, concurrency : see :func:`predict_with_client`.
    teacher_model, base_model : override the backend's defaults
        (:data:`DEFAULT_MODELS`: locally the stand-in teacher and ``local/tiny``,
        on Tinker :data:`TINKER_MODEL` for both).
    prompt : the teacher's prompt (``"teacher"`` only).
    max_tokens : override 256 (teacher) / 8 (students).

    Examples
    --------
    >>> from helpers import connect
    >>> preds = predict("teacher", ["Wo ist der Bahnhof?"], connect("local"), progress=False)  # doctest: +SKIP
    >>> preds[0].label, preds[0].raw.splitlines()[-1]  # doctest: +SKIP
    ('de', 'Final Answer: de')
    """
    kind, folder = parse_spec(spec)
    texts = text_list(texts)
    if kind == "baseline":
        from . import baseline

        model = baseline.load_baseline(folder)
        return [Prediction(label, label) for label in baseline.predict(model, texts)]
    if service is None:
        from .backend import connect

        service = connect()
    client = sampling_client_for(spec, service, teacher_model=teacher_model, base_model=base_model)
    return predict_with_client(client, texts, with_prompt=kind == "teacher", prompt=prompt,
                               max_tokens=max_tokens, progress=progress, concurrency=concurrency, desc=kind,
                               max_context=context_length(service, model_of(spec, service, teacher_model, base_model)))


def model_of(spec: str, service, teacher_model: str | None = None, base_model: str | None = None) -> str:
    """The name of the model behind a model predictor spec: for a student, the one it was
    trained from (its ``checkpoint.json``)."""
    kind, folder = parse_spec(spec)
    if kind == "student":
        return read_checkpoint_info(folder).get("base_model", "")
    backend = getattr(service, "backend", "tinker")
    models = default_models(backend if backend in DEFAULT_MODELS else "tinker")
    return (teacher_model or models["teacher"]) if kind == "teacher" else (base_model or models["base"])


def markdown_table(rows: Sequence[Mapping], max_rows: int | None = 20, max_chars: int = 80) -> str:
    """A list of dicts (for example an :func:`error_table`) as a Markdown table, for reports.

    Unparsed answers show as ``(unparsed)``; long texts are cut to ``max_chars``.
    """
    rows = list(rows)
    if not rows:
        return "(no rows)\n"
    keys = list(rows[0])

    def cell(value) -> str:
        if value is None:
            return "(unparsed)"
        if isinstance(value, float):
            return f"{value:.4g}"
        text = " ".join(str(value).split()).replace("|", "\\|")
        text = text if len(text) <= max_chars else text[: max_chars - 1] + "…"
        # Queries can hold HTML (<p class=...>): escaped, it shows as text instead of breaking the table.
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    shown = rows if max_rows is None else rows[:max_rows]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in shown]
    if len(shown) < len(rows):
        lines.append(f"\n({len(rows) - len(shown)} more rows not shown)")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- cost


def prompt_tokens_per_query(tokenizer, texts: Sequence[str], with_prompt: bool,
                            prompt: str = DEFAULT_PROMPT) -> list[int]:
    """Tokens each query sends to the model, rendered by the model's own chat template.

    With the prompt (the teacher), that is the system prompt, the query and the
    template's markup; without (the student), the query and the markup only. The
    difference is what distillation saves on every single query. ``texts`` are strings or
    objects with a string ``"text"``; a single string is refused (it would count characters).
    """
    out = []
    for text in text_list(texts, "prompt_tokens_per_query: texts"):
        messages = teacher_messages(text, prompt) if with_prompt else student_messages(text)
        out.append(model_input(tokenizer, messages).length)
    return out


def _mean(value: float | Sequence[float]) -> float:
    if isinstance(value, numbers.Real):
        return float(value)
    values = list(value)
    if not values:
        raise ValueError("no token counts")
    return float(np.mean(values))


def cost_table(teacher_tokens: float | Sequence[int], student_tokens: float | Sequence[int],
               prices: Mapping[str, float] | None = None) -> dict:
    """Prompt tokens per query for teacher and student, their ratio, and what a million queries cost.

    Parameters
    ----------
    teacher_tokens, student_tokens : tokens per query (a number, or one count per
        query, as :func:`prompt_tokens_per_query` gives, which is averaged).
    prices : ``{"teacher": usd, "student": usd}`` per million prompt tokens;
        default :data:`PRICES` (EXAMPLE prices: edit them).

    >>> c = cost_table(1000, 50, {"teacher": 0.2, "student": 0.2})
    >>> c["ratio"], c["savings_usd_per_million_queries"]
    (20.0, 190.0)
    """
    note = prices_note(prices)
    prices = dict(PRICES if prices is None else prices)
    for key in ("teacher", "student"):
        if key not in prices:
            raise ValueError(f"prices needs a {key!r} entry (USD per million prompt tokens)")
    t, s = _mean(teacher_tokens), _mean(student_tokens)
    # USD per million queries = tokens per query * USD per token * 1e6 = tokens * USD per 1M tokens
    teacher_usd = t * prices["teacher"]
    student_usd = s * prices["student"]
    return {
        "teacher_tokens_per_query": t,
        "student_tokens_per_query": s,
        "tokens_saved_per_query": t - s,
        "ratio": t / s if s else float("inf"),
        "prices_usd_per_million_tokens": {"teacher": prices["teacher"], "student": prices["student"]},
        "prices_note": note,
        "teacher_usd_per_million_queries": teacher_usd,
        "student_usd_per_million_queries": student_usd,
        "savings_usd_per_million_queries": teacher_usd - student_usd,
    }


def usd(prices: Mapping[str, float], **tokens: float) -> float:
    """What ``tokens`` of each kind cost at ``prices`` (USD per million tokens of that kind).

    >>> usd({"teacher": 0.2, "sampled": 0.6}, teacher=3_000_000, sampled=500_000)
    0.9
    """
    return sum(n * prices[kind] for kind, n in tokens.items()) / 1_000_000  # exact for fractions too


def _exact(x: float) -> Fraction:
    """``x`` as the fraction it is written as: 0.1 is 1/10, not the binary float nearest it.

    >>> _exact(0.1), _exact(np.float64(2.5)), _exact(3)
    (Fraction(1, 10), Fraction(5, 2), Fraction(3, 1))
    """
    if isinstance(x, numbers.Rational):
        return Fraction(x)
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"expected a finite number, got {x!r}")
    return Fraction(repr(x))


def payback(cost: Mapping, labelled_queries: int, train_tokens: int, teacher_answer_tokens: float,
            student_answer_tokens: float, prices: Mapping[str, float] | None = None) -> dict:
    """What distilling cost once, what each query then saves, and when the student has paid for itself.

    The one-off cost is the teacher labelling the pool (each request reads the prompt and
    the query, and writes its answer) and the student's training; each query after that
    costs the student its own prompt and a bare label instead of the teacher's long
    prompt and its answer. ``break_even_queries`` is the one-off cost over that saving, rounded
    up, and computed in exact arithmetic on the numbers as written: a one-off cost of exactly
    395 savings is 395 queries, where floating-point error made it 395.00000000000006, so 396.

    Parameters
    ----------
    cost : from :func:`cost_table` (prompt tokens per query of teacher and student).
    labelled_queries : requests the teacher answered to make the training data, each counted
        at the teacher's prompt tokens per query in ``cost``.
    train_tokens : tokens the training processed, every epoch counted (the ``tokens`` of
        the steps in a run's history).
    teacher_answer_tokens, student_answer_tokens : tokens each writes per answer on average
        (the teacher's is in ``distill.jsonl.summary.json``, ``completion_tokens_per_query``).
    prices : USD per million tokens with ``teacher``, ``student``, ``sampled`` and ``train``;
        default :data:`PRICES` (EXAMPLE prices: edit them).

    >>> prices = {"teacher": 0.2, "student": 0.2, "sampled": 0.6, "train": 0.6}
    >>> p = payback(cost_table(1000, 50, prices), 10_000, 2_000_000, 30, 2, prices)
    >>> round(p["one_off_usd"], 2), round(1e6 * p["saving_usd_per_query"], 1), p["break_even_queries"]
    (3.38, 206.8, 16345)
    """
    note = prices_note(prices)
    prices = dict(PRICES if prices is None else prices)
    missing = [key for key in ("teacher", "student", "sampled", "train") if key not in prices]
    if missing:
        raise ValueError(f"prices needs {', '.join(map(repr, missing))} (USD per million tokens)")
    for name, value in (("labelled_queries", labelled_queries), ("train_tokens", train_tokens),
                        ("teacher_answer_tokens", teacher_answer_tokens), ("student_answer_tokens", student_answer_tokens)):
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    exact = {key: _exact(prices[key]) for key in ("teacher", "student", "sampled", "train")}
    teacher = usd(exact, teacher=_exact(cost["teacher_tokens_per_query"]), sampled=_exact(teacher_answer_tokens))
    student = usd(exact, student=_exact(cost["student_tokens_per_query"]), sampled=_exact(student_answer_tokens))
    labelling, training = _exact(labelled_queries) * teacher, usd(exact, train=_exact(train_tokens))
    saving = teacher - student
    return {
        "labelling_usd": float(labelling),
        "training_usd": float(training),
        "one_off_usd": float(labelling + training),
        "teacher_usd_per_query": float(teacher),
        "student_usd_per_query": float(student),
        "saving_usd_per_query": float(saving),
        "break_even_queries": math.ceil((labelling + training) / saving) if saving > 0 else None,
        "prices_note": note,
    }


def run_payback(cost: Mapping, generation: Mapping, history: Sequence[Mapping], batch_size: int,
                prices: Mapping[str, float] | None = None) -> dict:
    """:func:`payback` of one distillation run, from what it recorded.

    ``generation`` is the summary of :func:`helpers.generate.generate` (as a dict: its
    ``distinct`` requests and ``completion_tokens_per_query``); ``history`` the training's steps,
    whose ``tokens`` add up to what was trained. Steps recorded before steps counted their
    tokens (a run resumed across versions) are estimated instead (those steps x
    ``batch_size`` x the student's prompt tokens per query and its answer), and
    ``train_tokens_estimated`` says so. The student writes a bare
    label and its end-of-turn token: 2 tokens. The result adds ``labelled_queries``,
    ``teacher_answer_tokens``, ``train_tokens`` and ``train_tokens_estimated`` to :func:`payback`'s.
    """
    student_answer_tokens = 2
    uncounted = sum("tokens" not in step for step in history)
    estimated = uncounted > 0
    tokens = sum(int(step["tokens"]) for step in history if "tokens" in step)
    tokens += round(uncounted * batch_size * (cost["student_tokens_per_query"] + student_answer_tokens))
    requests, answer_tokens = int(generation["distinct"]), float(generation["completion_tokens_per_query"])
    result = payback(cost, requests, tokens, answer_tokens, student_answer_tokens, prices)
    return {**result, "labelled_queries": requests, "teacher_answer_tokens": answer_tokens, "train_tokens": tokens,
            "train_tokens_estimated": estimated}


def measure_latency(sampling_client, tokenizer, texts: Sequence[str], with_prompt: bool, *,
                    prompt: str = DEFAULT_PROMPT, max_tokens: int | None = None) -> float:
    """Mean wall-clock seconds per query, one query at a time (latency, not throughput).

    One untimed call first, so loading a model or a detector is not counted.
    Locally the teacher is the rule-based stand-in, so its latency says nothing
    about an LLM teacher's; the *student's* latency is a real model's on this CPU.
    """
    texts = text_list(texts)
    if not texts:
        raise ValueError("no texts to time")
    tokenizer = tokenizer if tokenizer is not None else sampling_client.get_tokenizer()
    limit = max_tokens or (TEACHER_MAX_TOKENS if with_prompt else STUDENT_MAX_TOKENS)
    params = sampling_params(tokenizer, limit)

    def ask(text: str) -> None:
        messages = teacher_messages(text, prompt) if with_prompt else student_messages(text)
        sampling_client.sample(model_input(tokenizer, messages), 1, params).result()

    ask(texts[0])
    started = time.perf_counter()
    for text in texts:
        ask(text)
    return (time.perf_counter() - started) / len(texts)


# ---------------------------------------------------------------- files


def write_metrics(out_dir: str | os.PathLike, name: str | None, metrics: Mapping) -> Path:
    """Write ``metrics_<name>.json`` (or ``metrics.json`` when ``name`` is None) to ``out_dir``."""
    path = Path(out_dir) / (f"metrics_{name}.json" if name else "metrics.json")
    write_text(path, json.dumps(json_safe(dict(metrics)), indent=1, ensure_ascii=False) + "\n")
    return path


def read_metrics(path: str | os.PathLike) -> dict:
    """A metrics file written by :func:`write_metrics`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None


def _gold_pairs(rows: Sequence[Mapping]) -> tuple[list[str], list[str]]:
    """The texts and labels of gold rows, or a one-line ``DataError`` naming the first bad row."""
    if isinstance(rows, str | bytes | Mapping):
        raise DataError("gold rows: expected a list of objects with \"text\" and \"label\" (as read_gold gives)")
    texts, labels = [], []
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping) or not isinstance(row.get("text"), str):
            raise DataError(f"gold rows: row {i} is not an object with a string \"text\"")
        if row.get("label") not in LABELS:
            raise DataError(f"gold rows: row {i}: label {row.get('label')!r} is not one of {' '.join(LABELS)}")
        texts.append(row["text"])
        labels.append(row["label"])
    if not texts:
        raise DataError("gold rows: no rows to score")
    return texts, labels


def evaluate_predictor(spec: str, rows: Sequence[Mapping], service=None, **kwargs) -> tuple[dict, list[Prediction]]:
    """Predict every gold row's ``text`` with ``spec`` and score it against ``label``.

    ``kwargs`` go to :func:`predict`. Returns ``(metrics, predictions)``; the
    metrics also name the ``predictor``.
    """
    texts, labels = _gold_pairs(rows)  # before asking anything: on Tinker every question is paid
    predictions = predict(spec, texts, service, **kwargs)
    metrics = {"predictor": spec, **compute_metrics(labels, predictions)}
    return metrics, predictions


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``python -m helpers evaluate``."""
    parser.add_argument("--data", required=True, help="gold-labelled JSONL (text, label)")
    parser.add_argument("--predictor", required=True, metavar="SPEC",
                        help="teacher | base | student:DIR | baseline:DIR")
    parser.add_argument("--backend", choices=("local", "tinker"), default=None,
                        help="default: PD_BACKEND if set, else Tinker when TINKER_API_KEY is set, else local")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write metrics.json, predictions.jsonl and confusion PNGs here")
    parser.add_argument("--model", default=None,
                        help="model for teacher/base (default: the backend's, see helpers.evaluate)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N rows")
    parser.add_argument("--concurrency", type=int, default=64, help="sample calls in flight (default 64)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing, different evaluation in --out")
    return parser


def _fingerprint(data: Path, spec: str, limit: int | None, model: str | None, backend: str | None,
                 prompt: str | None = None, max_tokens: int | None = None) -> dict:
    """What an evaluation depends on: the data, the predictor and its weights, the backend,
    and what a model is asked with: the teacher's ``prompt`` and the answers' ``max_tokens``.

    A retrained student (its ``checkpoint.json``) or baseline (``baseline.joblib``), the
    same command with a Tinker key instead of offline, or the teacher after an edit of its
    prompt (:data:`helpers.prompt.DEFAULT_PROMPT`), is a different evaluation.
    """
    from .baseline import MODEL_FILE

    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    kind, folder = parse_spec(spec)
    weights = None
    if kind in ("student", "baseline"):
        path = Path(folder) / ("checkpoint.json" if kind == "student" else MODEL_FILE)
        weights = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    fingerprint = {"predictor": spec, "data_sha256": digest, "limit": limit, "model": model,
                   "backend": None if kind == "baseline" else backend, "weights_sha256": weights}
    if prompt is not None:
        fingerprint["prompt_sha256"] = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    if max_tokens is not None:
        fingerprint["max_tokens"] = max_tokens
    return fingerprint


def _asked_with(kind: str) -> dict:
    """The prompt and answer length a predictor of ``kind`` is asked with, read now (the module's
    settings as they are, a prompt edited since the last run included): :func:`predict`'s keywords."""
    if kind == "baseline":
        return {}
    if kind == "teacher":
        return {"prompt": DEFAULT_PROMPT, "max_tokens": TEACHER_MAX_TOKENS}
    return {"max_tokens": STUDENT_MAX_TOKENS}


def _output_files(out: Path, name: str) -> dict[str, Path]:
    """Every file ``evaluate --out`` writes for predictor ``name``, ``metrics.json`` (written last) first."""
    return {"metrics": out / "metrics.json", "predictions": out / "predictions.jsonl",
            "confusion": out / f"confusion_{name}.png", "confusion_normalized": out / f"confusion_{name}_normalized.png"}


def _replaced_files(out: Path, spec, outputs: dict[str, Path]) -> list[Path]:
    """The files the evaluation of ``spec`` wrote in ``out`` that this one will not write over."""
    try:
        theirs = _output_files(out, predictor_name(spec)).values()
    except (DataError, TypeError, ValueError):  # not a predictor: nothing of theirs is known
        return []
    return [path for path in theirs if path not in outputs.values()]


@contextlib.contextmanager
def _ctrl_c_waits():
    """Hold Ctrl-C (SIGINT) back until the block ends, so the files it writes are written all.

    A no-op outside the main thread, where Python cannot set signal handlers.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if pressed:
        print("evaluate: Ctrl-C came while the results were being written; they are written in full", file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    """Run ``python -m helpers evaluate``; the last line of stdout is ``accuracy=0.xxxx n=N``.

    Returns 0 on success; 2 with a one-line reason on stderr for bad input or a backend
    that cannot be used (unreachable server, refused key, a teacher or base model the backend
    does not offer, named with those it does before anything is written, or a missing checkpoint),
    like every command (``python -m helpers`` gives 2 for an error from the server too).
    An ``--out`` holding the same evaluation (same data, predictor, limit and model, and the
    same teacher prompt and answer length) is not redone; a different one, or any file this
    command writes there (``metrics.json``, ``predictions.jsonl``, ``confusion_<predictor>[_normalized].png``)
    without the ``metrics.json`` that names its evaluation, is kept unless ``--overwrite``
    (which also removes the pictures of the evaluation it replaces). Nothing is saved before the end: ``metrics.json`` is written last, and Ctrl-C waits
    until all the files are written.
    """
    from .backend import BackendError, choose_backend, redact
    from .baseline import labelled_offline

    try:
        if args.limit is not None and args.limit < 1:
            raise DataError(f"setting: --limit must be >= 1, got {args.limit}")
        if args.concurrency < 1:
            raise DataError(f"setting: --concurrency must be >= 1, got {args.concurrency}")
        spec = args.predictor
        name = predictor_name(spec)
        rows = read_gold(args.data)[: args.limit]
        out = Path(args.out) if args.out else None
        backend, why = choose_backend(args.backend)
        asked = _asked_with(parse_spec(spec)[0])  # the teacher's prompt among them: one edited is another evaluation
        fingerprint = _fingerprint(Path(args.data), spec, args.limit, args.model, backend, **asked)
        outputs = _output_files(out, name) if out is not None else {}
        stale: list[Path] = []  # the pictures of the evaluation an --overwrite replaces, if of another predictor
        if out is not None and outputs["metrics"].exists():
            done = read_metrics(outputs["metrics"])
            if not isinstance(done, dict):
                raise DataError(f"{outputs['metrics']}: not a metrics file (not a JSON object); "
                                "use --overwrite or another --out")
            finished = done.get("fingerprint") == fingerprint and "accuracy" in done and "n" in done
            if finished and not args.overwrite:
                print(f"{outputs['metrics']}: this evaluation is already done", file=sys.stderr)
                print(f"accuracy={done['accuracy']:.4f} n={done['n']}")
                return 0
            if not args.overwrite:
                raise DataError(f"{outputs['metrics']}: exists from another evaluation; "
                                "use --overwrite or another --out")
            stale = _replaced_files(out, done.get("predictor"), outputs)
        if out is not None and not args.overwrite:
            # metrics.json is written last: without it, no other file here is this evaluation's
            for path in outputs.values():
                if path.exists():
                    raise DataError(f"{path}: exists, and no metrics.json says which evaluation wrote it; "
                                    "use --overwrite or another --out")
        model_kw = {}
        if args.model:
            model_kw = {"teacher_model": args.model} if name == "teacher" else {"base_model": args.model}
        service = None
        kind, folder = parse_spec(spec)
        if kind == "student":
            read_checkpoint_info(folder)  # a missing or broken checkpoint is named before connecting
        # the offline note on the pictures: a baseline asks no model, so its labels' backend (in its
        # meta.json) says whether its numbers are the stand-in teacher's; saved without it, this one's
        labelled = labelled_offline(folder) if kind == "baseline" else None
        offline = backend == "local" if labelled is None else labelled
        if kind != "baseline":
            from .backend import check_model, connect

            service = connect(args.backend)
            if kind in ("teacher", "base"):  # a student's model is its checkpoint's
                # the default too, as generate does: another server may not offer it
                check_model(service, model_of(spec, service, **model_kw), use="sample")
        for path in outputs.values():  # after the backend and model checks: a refused one leaves no folder
            check_writable(path)  # fail before the work, not after it
        if service is not None:  # only now: bad input is one line on stderr, this one is not printed before it
            print(f"backend: {backend} ({why})", file=sys.stderr)
        metrics, predictions = evaluate_predictor(
            spec, rows, service, progress=not args.no_progress, concurrency=args.concurrency, **model_kw, **asked)
        metrics["data"] = str(args.data)
        metrics["backend"] = getattr(service, "backend", None)
        metrics["fingerprint"] = fingerprint
        if out is not None:
            from .plots import mark_offline, plot_confusions, save_figure

            figures = {key: mark_offline(plot_confusions({name: metrics}, normalize=normalize), offline)
                       for key, normalize in (("confusion", False), ("confusion_normalized", True))}
            with _ctrl_c_waits():  # all the files or, before this, none: a re-run then starts clean
                write_jsonl(outputs["predictions"], [
                    {"text": r["text"], "gold": r["label"], "label": p.label, "raw": p.raw}
                    for r, p in zip(rows, predictions, strict=True)])
                for key, fig in figures.items():
                    save_figure(fig, outputs[key])
                write_metrics(out, None, metrics)
                for path in stale:
                    path.unlink(missing_ok=True)
    except (DataError, BackendError) as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 2
    except Exception as e:  # the local backend's refusals: one line, not a traceback
        from .local import LocalBackendError

        if isinstance(e, LocalBackendError):
            print(f"error: {redact(str(e))}", file=sys.stderr)
            return 2
        raise
    print(f"predictor={spec} unparsed={metrics['unparsed']} macro_f1={metrics['macro_f1']:.4f} "
          f"accuracy_ci=[{metrics['accuracy_ci'][0]:.4f}, {metrics['accuracy_ci'][1]:.4f}]")
    print(f"accuracy={metrics['accuracy']:.4f} n={metrics['n']}")
    return 0


if __name__ == "__main__":  # python -m helpers.evaluate: the same as python -m helpers evaluate (Ctrl-C, errors)
    from .cli import main as cli_main

    sys.exit(cli_main(["evaluate", *sys.argv[1:]]))
