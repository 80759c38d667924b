"""The recipe's knobs, measured: teacher and prompt, sampling, data volume, hyperparameters, soft labels.

Each experiment is one function that returns a *tidy table* (a list of dicts,
one row per measured point) and has a plot function beside it:

===============================  ===================================  ==============================
experiment                       what varies                          plot
===============================  ===================================  ==============================
:func:`prompt_ablation`          the teacher's prompt (full, short,   :func:`plot_prompt_ablation`
                                 minus one rule); on Tinker the model
:func:`sampling_strategies`      teacher temperature, K-vote majority :func:`plot_sampling`
:func:`data_volume`              number of teacher examples           :func:`plot_data_volume`
:func:`hyperparameter_grid`      learning rate x LoRA rank (locally:  :func:`plot_hyperparameters`
                                 x model size)
:func:`soft_labels`              hard answers vs the teacher's        :func:`plot_soft_labels`
                                 distribution over the 13 labels
===============================  ===================================  ==============================

Students are scored on the dev gold set (``data/dev_gold.jsonl``; with
``quick``, every third row), never on the test set: choosing settings is
tuning, and the test set stays for the final evaluation. ``accuracy`` is
against the gold labels, ``agreement`` the share of answers equal to the
teacher's (full prompt, greedy) on the same rows; ``accuracy_low`` and
``accuracy_high`` bound a 95% bootstrap interval (Wilson's when every answer is right,
:func:`helpers.metrics.bootstrap_ci`), a reminder that a few points of difference on 163
rows are noise.

**Cached.** Every measured point (one teacher evaluation, one generation, one
student trained and scored) is stored as JSON under ``workdir()/advanced/``,
named by a hash of everything that determines it: backend, models, settings,
and the exact training rows and evaluation texts. Re-running a notebook reads
the points back instead of retraining; changing a setting computes only the
new points; experiments that need the same point share it (the largest quick
student of the data-volume curve is also the ``T=0, K=1`` student of the
sampling experiment, the ``hard`` one of the soft-label experiment and one
cell of the grid). Delete the folder to start over.

**Quick.** ``quick=True`` (the default offline) uses reduced grids, short
student runs (2 epochs), 1,000-query subsets and every third dev row,
so that all five experiments run in a few minutes on two CPU cores;
``quick=False`` runs the full grids. Offline, the teacher is the rule-based stand-in and the students
are tiny local models: every plot says so in its title, and the numbers are
not LLM results.

**Soft labels.** :func:`soft_label_rows` turns a row whose teacher voted
``{"de": 3, "en": 2}`` into two weighted rows, ``de`` with weight 0.6 and ``en``
with 0.4. :func:`helpers.train.train` multiplies each row's token weights by
its ``"weight"``, so the summed cross-entropy of those rows,
``-(0.6 log p(de) + 0.4 log p(en))``, is exactly the cross-entropy against the
teacher's distribution. The distribution is estimated from K samples at
temperature 1, which works on any backend; on Tinker one could instead read the
log-probabilities of the label tokens after ``Final Answer:``.

Example
-------
>>> rows = [{"messages": [{"role": "user", "content": "Hola, ¿qué tal?"},
...                       {"role": "assistant", "content": "es"}],
...          "teacher": {"votes": {"es": 4, "ot": 1}}}]
>>> [(r["messages"][-1]["content"], r["weight"]) for r in soft_label_rows(rows)]
[('es', 0.8), ('ot', 0.2)]
>>> table = data_volume(connect("local"), sizes=[150, 400])  # doctest: +SKIP
>>> fig = plot_data_volume(table)                              # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .backend import connect, context_length, supported_models
from .course import DATA, ensure_distillation_data, is_offline, is_quick, run_dir, workdir
from .dataio import DataError, read_conversations, read_gold, read_queries, write_text
from .evaluate import (
    TEACHER_MAX_TOKENS,
    agreement,
    compute_metrics,
    default_models,
    labels_of,
    predict_with_client,
)
from .generate import GenerateConfig, finished_summary, generate
from .labels import LABELS
from .plots import OFFLINE_NOTE
from .prompt import DEFAULT_PROMPT, RULE_NAMES, SHORT_PROMPT, build_prompt, count_tokens
from .render import conversation
from .train import TrainConfig, split, train

CACHE_VERSION = 1  # part of every key: bump it when a point's meaning changes

QUICK_SUBSET = 1000
"""Queries behind the sampling, hyperparameter and soft-label points with ``quick``: the
data-volume curve's largest quick point, so those students are one and the same (cached once)."""
FULL_SUBSET = 2000
QUICK_EVAL_STEP = 3
"""With ``quick``, students and teachers are scored on every third dev row (163 of 487)."""

QUICK_SIZES: tuple[int | None, ...] = (150, 400, 1000)
FULL_SIZES: tuple[int | None, ...] = (100, 300, 1000, None)  # None: every row of the distillation data

QUICK_STRATEGIES: tuple[tuple[float, int], ...] = ((0.0, 1), (1.0, 1), (1.0, 5))
"""(temperature, K votes) of the sampling experiment with ``quick``."""
FULL_STRATEGIES: tuple[tuple[float, int], ...] = ((0.0, 1), (0.7, 1), (1.0, 1), (1.0, 5), (1.0, 10))

GRIDS: dict[str, dict[bool, dict[str, tuple]]] = {
    # locally LoRA's rank is recorded but every weight trains, so model size stands in for rank
    "local": {
        True: {"learning_rates": (1e-3, 3e-3), "models": ("local/tiny-small", "local/tiny"), "ranks": (32,)},
        False: {"learning_rates": (3e-4, 1e-3, 3e-3, 1e-2),
                "models": ("local/tiny-small", "local/tiny", "local/tiny-large"), "ranks": (32,)},
    },
    "tinker": {
        True: {"learning_rates": (3e-5, 1e-4, 3e-4), "models": (None,), "ranks": (8, 32)},
        False: {"learning_rates": (1e-5, 3e-5, 1e-4, 3e-4, 1e-3), "models": (None,), "ranks": (4, 8, 32, 128)},
    },
}
"""The hyperparameter grids: per backend, per ``quick``; ``None`` as model is the recipe's student."""

CI_RESAMPLES = 300
"""Bootstrap resamples of each accuracy interval: a bar's whisker is its 95% interval."""

QUICK_TEACHERS = 3
"""On Tinker with ``quick``, how many listed models besides the default teacher the ablation asks."""


# --------------------------------------------------------------------------- settings


def resolve_quick(service, quick: bool | None) -> bool:
    """``quick`` as given, else ``PD_QUICK``, else True offline and False on Tinker
    (:func:`helpers.course.is_quick`)."""
    return is_quick(service, quick)


def student_config(service, quick: bool | None = None, **overrides) -> TrainConfig:
    """The student's training settings for these experiments.

    Offline with ``quick``: ``local/tiny``, 2 epochs of batch 8 at learning rate 3e-3.
    The tiny models start from random weights, and for them the number of optimizer
    steps matters more than the batch: at equal compute, batch 8 for 2 epochs beat
    batch 16 or 32 for 3 on this task. Offline full: ``local/tiny``, 3 epochs of batch 16
    at the recipe's learning rate. (The quick grid, with the local default ``prompt_weight``
    0.5, favours 3e-3 over 1e-3 at batch 8: offline dev accuracy 0.448 against 0.429.)
    On Tinker: the recipe's defaults (:meth:`TrainConfig.for_backend`) with batch 32,
    so that a thousand examples still make a few dozen steps. Every run holds out 10%
    of its rows for the validation loss. ``overrides`` replace any field.
    """
    quick = resolve_quick(service, quick)
    if is_offline(service):
        base = {"base_model": "local/tiny", "epochs": 2, "batch_size": 8, "learning_rate": 3e-3} if quick else \
            {"base_model": "local/tiny", "epochs": 3, "batch_size": 16}
        base["warmup_steps"] = 5
    else:
        base = {"batch_size": 32, "epochs": 2 if quick else 4}
    base.update(val_fraction=0.1, val_samples=20)
    return TrainConfig.for_backend(_backend(service), **{**base, **overrides})


def _backend(service) -> str:
    return "local" if is_offline(service) else "tinker"


def cache_dir() -> Path:
    """Where the points are stored: ``workdir()/advanced``."""
    path = workdir() / "advanced"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- the cache

STATS = {"computed": 0, "cached": 0}
"""Points computed and read back since the module was imported (the experiments print them)."""


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")).hexdigest()


def cached(kind: str, key: Mapping, compute: Callable[[], Any]) -> Any:
    """``compute()``'s result, stored at ``cache_dir()/<kind>-<hash of key>.json``; read back when present.

    ``key`` holds everything the result depends on (JSON-able). The result goes
    through JSON on the first call too, so both calls return the same thing.
    A file that cannot be read is recomputed and replaced.
    """
    full_key = {"version": CACHE_VERSION, "kind": kind, **key}
    digest = _digest(full_key)
    path = cache_dir() / f"{kind}-{digest[:16]}.json"
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("digest") == digest:
                STATS["cached"] += 1
                return saved["result"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, AttributeError):
            pass  # a damaged file: compute again
    result = json.loads(json.dumps(compute(), default=_json_default))
    write_text(path, json.dumps({"digest": digest, "key": full_key, "result": result}, ensure_ascii=False,
                                default=str) + "\n")
    STATS["computed"] += 1
    return result


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


class _Report:
    """Counts one experiment's points and prints what it did, when ``progress``."""

    def __init__(self, name: str, progress: bool):
        self.name, self.progress = name, progress
        self.start = dict(STATS)
        self.t0 = time.time()

    def say(self, text: str) -> None:
        if self.progress:
            print(f"{self.name}: {text}", flush=True)

    def done(self, table: list[dict]) -> list[dict]:
        computed = STATS["computed"] - self.start["computed"]
        reused = STATS["cached"] - self.start["cached"]
        self.say(f"{len(table)} rows, from {computed} runs made now and {reused} read from {cache_dir()} "
                 f"(a row can draw on several runs, the teacher's among them; {time.time() - self.t0:.0f} s)")
        return table


# --------------------------------------------------------------------------- data


@dataclass
class EvalSet:
    """The gold rows a predictor is scored on, with a name for tables and a digest for keys."""

    name: str
    texts: list[str]
    labels: list[str]

    @property
    def digest(self) -> str:
        return _digest([self.texts, self.labels])


def eval_set(quick: bool, gold: Sequence[Mapping] | None = None) -> EvalSet:
    """The dev gold set (every ``QUICK_EVAL_STEP``-th row with ``quick``), or ``gold`` rows as given."""
    if gold is not None:
        rows, name = list(gold), f"given gold rows ({len(gold)})"
    else:
        rows = read_gold(DATA / "dev_gold.jsonl")
        if quick:
            rows = rows[::QUICK_EVAL_STEP]
            name = f"dev_gold.jsonl, every {QUICK_EVAL_STEP}rd row ({len(rows)})"
        else:
            name = f"dev_gold.jsonl ({len(rows)})"
    if not rows:
        raise DataError("evaluation: no gold rows")
    return EvalSet(name, [r["text"] for r in rows], [r["label"] for r in rows])


def distillation_rows(service, quick: bool, rows: Sequence[Mapping] | None = None) -> list[dict]:
    """The teacher's labelled pool (``run_dir(service, quick)/distill.jsonl``, made if missing), in a seeded order.

    The order is shuffled once with seed 0, so that the first ``n`` rows are an
    even sample of the pool and the smaller subsets are nested in the larger ones.
    """
    if rows is None:
        rows = read_conversations(ensure_distillation_data(service, quick, progress=False))
    rows = [dict(r) for r in rows]
    random.Random(0).shuffle(rows)
    return rows


def _text(row: Mapping) -> str:
    return next(m["content"] for m in row["messages"] if m["role"] == "user")


def _label(row: Mapping) -> str:
    return row["messages"][-1]["content"]


def _rows_digest(rows: Sequence[Mapping]) -> str:
    return _digest([[_text(r), _label(r), float(r.get("weight", 1.0))] for r in rows])


def reference_labels() -> dict[str, str]:
    """``text -> label`` of the pool's reference labels (``data/queries.jsonl``), to measure label noise."""
    return {r["text"]: r["label"] for r in read_queries(DATA / "queries.jsonl") if r.get("label") in LABELS}


def soft_label_rows(rows: Sequence[Mapping]) -> list[dict]:
    """One row per label the teacher voted for, weighted by its vote share (weights sum to 1 per query).

    ``rows`` are distillation rows with ``teacher.votes`` (as :func:`helpers.generate.generate`
    writes them with ``num_samples=K``). A row without votes stays one row of weight 1.
    Training on the result minimises the cross-entropy against the teacher's
    distribution (see the module docstring). Each output row keeps ``"query"``, the
    index of its query in ``rows``.
    """
    out = []
    for i, row in enumerate(rows):
        votes = {k: v for k, v in ((row.get("teacher") or {}).get("votes") or {}).items() if k in LABELS and v > 0}
        total = sum(votes.values())
        if not total:
            out.append({"messages": conversation(_text(row), _label(row)), "weight": 1.0, "query": i})
            continue
        for label in LABELS:  # the labels' order, so the rows are the same on every run
            if label in votes:
                out.append({"messages": conversation(_text(row), label), "weight": votes[label] / total, "query": i})
    return out


# --------------------------------------------------------------------------- measured points


def is_base_model(name: str) -> bool:
    """Whether a model name is a pretrained base model rather than a chat model, by Tinker's
    naming: a ``-Base`` suffix (Qwen, DeepSeek) or a Llama without ``Instruct``. A base model
    was never taught a chat turn, so as a teacher it would read the long prompt (paid) and
    give answers that do not parse.

    >>> [is_base_model(m) for m in ("Qwen/Qwen3-8B-Base", "Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B",
    ...                             "meta-llama/Llama-3.1-8B-Instruct")]
    [True, False, True, False]
    """
    short = name.rsplit("/", 1)[-1].lower()
    return short.endswith("-base") or (name.lower().startswith("meta-llama/") and "instruct" not in short)


def _teacher_model(service, teacher: str | None) -> str:
    return teacher or default_models(_backend(service))["teacher"]


def teacher_point(service, evalset: EvalSet, model: str | None = None, prompt: str = DEFAULT_PROMPT) -> dict:
    """The teacher's greedy answers on ``evalset`` with ``prompt`` (cached): predictions and prompt tokens."""
    model = _teacher_model(service, model)

    def compute():
        client = service.create_sampling_client(base_model=model).result()
        tokens, context = count_tokens(client.get_tokenizer(), prompt), context_length(service, model)
        # no query would fit beside the prompt and an answer: one line, not one notice per query
        if context is not None and tokens + TEACHER_MAX_TOKENS > context:
            raise DataError(f"the prompt ({tokens} tokens) and a {TEACHER_MAX_TOKENS}-token answer do not fit "
                            f"{model}'s context of {context} tokens")
        preds = predict_with_client(client, evalset.texts, with_prompt=True, prompt=prompt, progress=False,
                                    max_context=context)
        return {"predictions": labels_of(preds), "prompt_tokens": tokens}

    key = {"backend": _backend(service), "model": model, "prompt": _digest(prompt), "eval": evalset.digest}
    return cached("teacher", key, compute)


def student_point(service, rows: Sequence[Mapping], config: TrainConfig, evalset: EvalSet, report: _Report | None = None) -> dict:
    """Train a student on ``rows`` with ``config`` and score it on ``evalset`` (cached).

    Returns ``predictions`` (labels, ``None`` unparsed), the last validation point
    (``val_loss``, ``val_accuracy``; ``None`` without a validation split), ``steps``
    and ``train_seconds``.
    """
    rows = list(rows)

    def compute():
        if report:
            report.say(f"training {config.base_model} on {len(rows)} rows (lr {config.learning_rate:g}, "
                       f"rank {config.rank}, {config.epochs} epochs)")
        result = train(service, rows, config)
        preds = predict_with_client(result.sampling_client, evalset.texts, with_prompt=False, progress=False,
                                    max_context=context_length(service, config.base_model))
        last = result.validation[-1] if result.validation else {}
        return {"predictions": labels_of(preds), "val_loss": last.get("val_loss"), "val_accuracy": last.get("val_accuracy"),
                "steps": len(result.history), "train_seconds": round(result.seconds, 2)}

    key = {"backend": _backend(service), "config": asdict(config), "rows": _rows_digest(rows), "n": len(rows),
           "eval": evalset.digest}
    if len({_text(r) for r in rows}) < len(rows):  # a query in several rows (soft labels): split by query since 2026-12-03
        key["split"] = "by query"
    return cached("student", key, compute)


def teacher_data(service, texts: Sequence[str], temperature: float, num_samples: int,
                 teacher: str | None = None, report: _Report | None = None) -> tuple[list[dict], dict]:
    """The teacher's labels of ``texts`` sampled at ``temperature`` with ``num_samples`` votes.

    Written by :func:`helpers.generate.generate` to ``cache_dir()/teacher-data/``,
    under a name from a hash of the settings and the texts: a second call reads the
    finished file back and asks nothing, not even the requests that failed (asked again,
    they would change the data under the students trained on it; delete the file to ask
    again). An unfinished run resumes. Returns ``(rows, summary)``.
    """
    model = _teacher_model(service, teacher)
    config = GenerateConfig(teacher_model=model, temperature=float(temperature), num_samples=int(num_samples))
    digest = _digest({"version": CACHE_VERSION, "backend": _backend(service), "model": model,
                      "sampling": config.sampling(), "texts": list(texts)})
    out = cache_dir() / "teacher-data" / f"T{temperature:g}-K{num_samples}-{digest[:16]}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists() and report:
        report.say(f"teacher labels {len(texts)} queries at T={temperature:g} with K={num_samples}")
    client = service.create_sampling_client(base_model=model).result()
    summary = finished_summary(client, list(texts), out, config=config, teacher_name=model)
    if summary is None:
        summary = generate(client, list(texts), out, config=config, progress=False, teacher_name=model)
    return read_conversations(out), asdict(summary)


def _course_labels_are_greedy(service, quick: bool, teacher: str | None) -> bool:
    """Whether the course's distillation data (notebook 02's) was labelled at T=0 with one sample
    by ``teacher`` (default: the default teacher), as its summary says."""
    path = run_dir(service, quick) / "distill.jsonl.summary.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))["config"]
        return (float(config["temperature"]), int(config["num_samples"]), config["teacher_model"]) == (
            0.0, 1, _teacher_model(service, teacher))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def strategy_rows(service, quick: bool, rows: Sequence[Mapping] | None, pool: Sequence[Mapping], temperature: float,
                  num_samples: int, teacher: str | None = None, report: _Report | None = None) -> list[dict]:
    """The teacher's labels of the queries of ``pool`` (distillation rows) at ``temperature`` with ``num_samples``.

    At T=0 with one sample, the course's own data already holds them when it was labelled
    that way (``rows`` None: notebook 02's rows, greedy, by the same teacher with the
    course's prompt): those rows are used, and the teacher is not asked the same questions
    again (on Tinker, a thousand long-prompt requests). Otherwise :func:`teacher_data`.
    """
    if (float(temperature), int(num_samples)) == (0.0, 1) and rows is None and _course_labels_are_greedy(
            service, quick, teacher):
        return [dict(r) for r in pool]
    return teacher_data(service, [_text(r) for r in pool], temperature, num_samples, teacher, report)[0]


def _score(predictions: Sequence[str | None], evalset: EvalSet, teacher_predictions: Sequence[str | None]) -> dict:
    """accuracy with its 95% interval (``accuracy_low``, ``accuracy_high``; :func:`helpers.metrics.bootstrap_ci`),
    and agreement."""
    metrics = compute_metrics(evalset.labels, predictions, n_resamples=CI_RESAMPLES)
    low, high = metrics["accuracy_ci"]
    return {"accuracy": metrics["accuracy"], "accuracy_low": low, "accuracy_high": high,
            "agreement": agreement(predictions, teacher_predictions)["agreement"]}


def _setup(service, quick):
    service = service if service is not None else connect()
    return service, resolve_quick(service, quick)


# --------------------------------------------------------------------------- 1. teacher and prompt


def prompt_variants(rules: Sequence[str] = RULE_NAMES) -> dict[str, str]:
    """``{name: prompt}``: the full prompt, the one-line :data:`SHORT_PROMPT`, and the full prompt minus each rule."""
    return {"full prompt": DEFAULT_PROMPT, "short prompt": SHORT_PROMPT,
            **{f"without {rule}": build_prompt(without=[rule]) for rule in rules}}


def prompt_ablation(service=None, quick: bool | None = None, *, prompts: Mapping[str, str] | None = None,
                    teachers: Sequence[str] | None = None, gold: Sequence[Mapping] | None = None,
                    progress: bool = True) -> list[dict]:
    """Teacher accuracy on the dev set for each prompt variant, and on Tinker for other teacher models.

    Parameters
    ----------
    service : from :func:`helpers.connect` (default ``connect()``).
    quick : every third dev row and at most :data:`QUICK_TEACHERS` other models (default: offline).
    prompts : ``{name: prompt}``; default :func:`prompt_variants`. Asked of the default teacher.
    teachers : other teacher models, asked with the full prompt. Default: offline none (the
        stand-in is the only teacher); on Tinker the chat models the server lists
        (:func:`helpers.backend.supported_models`, without :func:`is_base_model`'s).
    gold : gold rows to score on instead of the dev set.

    Returns
    -------
    One row per (teacher, prompt): ``teacher``, ``prompt``, ``accuracy``, ``unparsed``,
    ``prompt_tokens`` (in the teacher's tokenizer), ``n``, ``eval_set``, ``backend``, ``error``
    (why a model could not be asked, else ``None``).
    """
    service, quick = _setup(service, quick)
    report = _Report("prompt_ablation", progress)
    evalset = eval_set(quick, gold)
    default = _teacher_model(service, None)
    prompts = dict(prompt_variants() if prompts is None else prompts)
    jobs = [(default, name, text) for name, text in prompts.items()]
    if teachers is None:
        teachers = []
        if not is_offline(service):
            listed = [m for m in supported_models(service, sampleable=True) if m != default]
            skipped = [m for m in listed if is_base_model(m)]
            teachers = [m for m in listed if m not in skipped]
            teachers = teachers[:QUICK_TEACHERS] if quick else teachers
            if skipped:
                report.say(f"not asking the base models the server lists (no chat turn; teachers=[...] asks them "
                           f"anyway): {', '.join(skipped)}")
            report.say(f"also asking {len(teachers)} other models the server lists: {', '.join(teachers)}")
        else:
            report.say("offline, the stand-in is the only teacher: the comparison across models runs on Tinker")
    jobs += [(m, "full prompt", DEFAULT_PROMPT) for m in teachers if m != default]
    table = []
    for model, name, text in jobs:
        row = {"teacher": model, "prompt": name, "accuracy": None, "unparsed": None, "prompt_tokens": None,
               "n": len(evalset.texts), "eval_set": evalset.name, "backend": _backend(service), "error": None}
        try:
            point = teacher_point(service, evalset, model, text)
        except Exception as e:  # a listed model may not sample (a base model without chat template, ...)
            if model == default:
                raise
            row["error"] = f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
            table.append(row)
            continue
        metrics = compute_metrics(evalset.labels, point["predictions"], n_resamples=1)
        row.update(accuracy=metrics["accuracy"], unparsed=metrics["unparsed"], prompt_tokens=point["prompt_tokens"])
        table.append(row)
    return report.done(table)


# --------------------------------------------------------------------------- 2. sampling


def _strategy_name(temperature: float, num_samples: int) -> str:
    return f"T={temperature:g}, K={num_samples}"


def sampling_strategies(service=None, quick: bool | None = None, *, strategies: Sequence[tuple[float, int]] | None = None,
                        n_queries: int | None = None, rows: Sequence[Mapping] | None = None,
                        gold: Sequence[Mapping] | None = None, train_overrides: Mapping | None = None,
                        teacher: str | None = None, progress: bool = True) -> list[dict]:
    """Label noise of each sampling strategy, and the accuracy of the student trained on its labels.

    The teacher labels the same ``n_queries`` pool queries once per strategy
    (temperature ``T``, majority of ``K`` samples); ``label_noise`` is the share of its
    labels that differ from the pool's reference labels (``data/queries.jsonl``).
    A student is trained on each set of labels (:func:`student_config`) and scored
    on the dev set.

    Parameters
    ----------
    strategies : ``(temperature, K)`` pairs; default :data:`QUICK_STRATEGIES` or :data:`FULL_STRATEGIES`.
    n_queries : pool queries to label (default :data:`QUICK_SUBSET` or :data:`FULL_SUBSET`).
    rows : distillation rows whose queries to use (default: the course's, see :func:`distillation_rows`).
    gold, train_overrides, teacher : gold rows instead of the dev set; :class:`TrainConfig`
        fields to change; the teacher model.

    Returns
    -------
    One row per strategy: ``strategy``, ``temperature``, ``num_samples``, ``queries``, ``rows``
    (labelled rows kept), ``label_noise``, ``mean_confidence`` (the winning vote share),
    ``accuracy`` (with ``accuracy_low``, ``accuracy_high``), ``agreement`` (student vs teacher
    on the dev set), ``same_as_first`` (the share of dev queries its student answers exactly
    as the first strategy's student does: near 1, the students learnt the same thing and the
    labels' differences did not reach them), ``n``, ``eval_set``, ``backend``.
    """
    service, quick = _setup(service, quick)
    report = _Report("sampling_strategies", progress)
    strategies = list(strategies or (QUICK_STRATEGIES if quick else FULL_STRATEGIES))
    n_queries = _count("n_queries", n_queries) or (QUICK_SUBSET if quick else FULL_SUBSET)
    pool = distillation_rows(service, quick, rows)[:n_queries]
    texts = [_text(r) for r in pool]
    evalset = eval_set(quick, gold)
    reference = teacher_point(service, evalset, teacher)["predictions"]
    ref_labels = reference_labels()
    config = student_config(service, quick, **(train_overrides or {}))
    table, first = [], None
    for temperature, k in strategies:
        data = strategy_rows(service, quick, rows, pool, temperature, k, teacher, report)
        known = [(_label(r), ref_labels[_text(r)]) for r in data if _text(r) in ref_labels]
        noise = float(np.mean([a != b for a, b in known])) if known else None
        confidence = float(np.mean([r["teacher"]["confidence"] for r in data])) if data else None
        point = student_point(service, [{"messages": r["messages"]} for r in data], config, evalset, report)
        first = point["predictions"] if first is None else first
        same = float(np.mean([a == b for a, b in zip(point["predictions"], first, strict=True)])) if first else None
        table.append({"strategy": _strategy_name(temperature, k), "temperature": float(temperature), "num_samples": int(k),
                      "queries": len(texts), "rows": len(data), "label_noise": noise, "mean_confidence": confidence,
                      **_score(point["predictions"], evalset, reference), "same_as_first": same,
                      "n": len(evalset.texts), "eval_set": evalset.name, "backend": _backend(service)})
    return report.done(table)


# --------------------------------------------------------------------------- 3. data volume


def data_volume(service=None, quick: bool | None = None, *, sizes: Sequence[int | None] | None = None,
                rows: Sequence[Mapping] | None = None, gold: Sequence[Mapping] | None = None,
                train_overrides: Mapping | None = None, progress: bool = True) -> list[dict]:
    """Student and classic baseline against the number of teacher examples they learn from.

    Both learn from the same rows: the first ``n`` of the teacher-labelled data (nested
    subsets, see :func:`distillation_rows`), less the share the student holds out for its
    validation loss (``val_fraction``, 10%), which the baseline leaves out too. Both are
    scored on the dev set; ``examples`` is ``n``.

    Parameters
    ----------
    sizes : numbers of examples; ``None`` means all rows. Default :data:`QUICK_SIZES`
        or :data:`FULL_SIZES`. Sizes over the rows available are clipped to them.
    rows, gold, train_overrides : as in :func:`sampling_strategies`.

    Returns
    -------
    One row per (predictor, size): ``predictor`` (``"student"`` or ``"baseline"``),
    ``examples``, ``accuracy`` (``accuracy_low``, ``accuracy_high``), ``agreement`` (with the
    teacher), ``teacher_accuracy``
    (the teacher's own, for reference), ``seconds`` (training), ``n``, ``eval_set``, ``backend``.
    """
    from .baseline import predict as baseline_predict
    from .baseline import train_baseline

    service, quick = _setup(service, quick)
    report = _Report("data_volume", progress)
    data = distillation_rows(service, quick, rows)
    sizes = [_count("sizes", s) for s in sizes] if sizes else (QUICK_SIZES if quick else FULL_SIZES)
    counts = sorted({min(len(data), s) if s else len(data) for s in sizes})
    evalset = eval_set(quick, gold)
    reference = teacher_point(service, evalset)["predictions"]
    teacher_accuracy = _score(reference, evalset, reference)["accuracy"]
    config = student_config(service, quick, **(train_overrides or {}))
    common = {"teacher_accuracy": teacher_accuracy, "n": len(evalset.texts), "eval_set": evalset.name,
              "backend": _backend(service)}
    table = []
    for n in counts:
        subset = [{"messages": r["messages"]} for r in data[:n]]
        point = student_point(service, subset, config, evalset, report)
        table.append({"predictor": "student", "examples": n, **_score(point["predictions"], evalset, reference),
                      "seconds": point["train_seconds"], **common})

        learnt = split(subset, config.val_fraction, config.seed, key=_text)[0]  # the rows the student trains on

        def fit_baseline(learnt=learnt):
            started = time.time()
            model = train_baseline([_text(r) for r in learnt], [_label(r) for r in learnt])
            return {"predictions": baseline_predict(model, evalset.texts), "seconds": round(time.time() - started, 2)}

        base = cached("baseline", {"rows": _rows_digest(learnt), "eval": evalset.digest}, fit_baseline)
        table.append({"predictor": "baseline", "examples": n, **_score(base["predictions"], evalset, reference),
                      "seconds": base["seconds"], **common})
    return report.done(table)


# --------------------------------------------------------------------------- 4. hyperparameters


def _count(name: str, value):
    """``value`` if it is a whole number of rows (>= 1) or None (the default); else a one-line error."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise DataError(f"setting: {name} takes whole numbers of rows >= 1 (None for the default), got {value!r}")


def recipe_defaults(service) -> dict:
    """The recipe's learning rate, rank and student model on this backend (:meth:`TrainConfig.for_backend`)."""
    config = TrainConfig.for_backend(_backend(service))
    return {"learning_rate": config.learning_rate, "rank": config.rank, "model": config.base_model}


def hyperparameter_grid(service=None, quick: bool | None = None, *, learning_rates: Sequence[float] | None = None,
                        models: Sequence[str | None] | None = None, ranks: Sequence[int] | None = None,
                        n_examples: int | None = None, rows: Sequence[Mapping] | None = None,
                        gold: Sequence[Mapping] | None = None, train_overrides: Mapping | None = None,
                        progress: bool = True) -> list[dict]:
    """Final validation loss and dev accuracy over a grid of learning rate x LoRA rank (or x model).

    On Tinker the grid is learning rate x LoRA rank. Locally the LoRA rank is only
    recorded (every weight of the tiny models trains), so the second axis is the
    model's size (:data:`helpers.local.TINY_MODELS`). Each student trains on the
    first ``n_examples`` rows with 10% held out, whose loss is ``val_loss``; the other
    settings are :func:`student_config`'s, so the grid's point at those settings is
    the same student as the other experiments' (and is trained once).

    Parameters
    ----------
    learning_rates, models, ranks : the grid (default :data:`GRIDS`); ``None`` as model
        is the recipe's student on this backend.
    n_examples : training rows (default :data:`QUICK_SUBSET` or :data:`FULL_SUBSET`).
    rows, gold, train_overrides : as in :func:`sampling_strategies`.

    Returns
    -------
    One row per grid point: ``learning_rate``, ``model``, ``rank``, ``val_loss``,
    ``val_accuracy`` (exact answers on the held-out rows, i.e. agreement with the
    teacher there), ``accuracy`` (``accuracy_low``, ``accuracy_high``) and ``agreement`` on the dev set, ``default`` (the
    recipe's learning rate and rank/model), ``student`` (the settings of :func:`student_config`,
    which the other experiments use), ``examples``, ``seconds``, ``n``,
    ``eval_set``, ``backend``.
    """
    service, quick = _setup(service, quick)
    report = _Report("hyperparameter_grid", progress)
    grid = GRIDS[_backend(service)][quick]
    learning_rates = list(learning_rates or grid["learning_rates"])
    models = list(models or grid["models"])
    ranks = list(ranks or grid["ranks"])
    n_examples = _count("n_examples", n_examples) or (QUICK_SUBSET if quick else FULL_SUBSET)
    data = [{"messages": r["messages"]} for r in distillation_rows(service, quick, rows)[:n_examples]]
    evalset = eval_set(quick, gold)
    reference = teacher_point(service, evalset)["predictions"]
    defaults = recipe_defaults(service)
    base = student_config(service, quick, **(train_overrides or {}))
    table = []
    for model in models:
        for rank in ranks:
            for lr in learning_rates:
                config = TrainConfig(**{**asdict(base), "base_model": model or base.base_model, "rank": rank,
                                        "learning_rate": lr})
                point = student_point(service, data, config, evalset, report)
                is_default = math.isclose(lr, defaults["learning_rate"]) and config.base_model == defaults["model"] \
                    and (is_offline(service) or rank == defaults["rank"])  # locally the rank is not used
                is_student = math.isclose(lr, base.learning_rate) and config.base_model == base.base_model \
                    and rank == base.rank
                table.append({"learning_rate": lr, "model": config.base_model, "rank": rank,
                              "val_loss": point["val_loss"], "val_accuracy": point["val_accuracy"],
                              **_score(point["predictions"], evalset, reference), "default": is_default,
                              "student": is_student,
                              "examples": len(data), "seconds": point["train_seconds"], "n": len(evalset.texts),
                              "eval_set": evalset.name, "backend": _backend(service)})
    return report.done(table)


# --------------------------------------------------------------------------- 5. soft labels


def soft_labels(service=None, quick: bool | None = None, *, num_samples: int | None = None,
                n_queries: int | None = None, rows: Sequence[Mapping] | None = None,
                gold: Sequence[Mapping] | None = None, train_overrides: Mapping | None = None,
                teacher: str | None = None, progress: bool = True) -> list[dict]:
    """Hard labels against the teacher's distribution, at equal data (the same queries).

    Three students learn from the same ``n_queries`` queries:

    - ``hard``: the teacher's single greedy answer (T=0), the usual recipe;
    - ``majority``: the majority of K samples at T=1 (hard labels from the same samples as ``soft``);
    - ``soft``: the K samples' vote shares as weighted rows (:func:`soft_label_rows`).

    The soft data has more rows than queries, so its batch size is scaled up by that
    ratio: every student takes the same number of optimizer steps, each over the
    same number of queries' worth of weight.

    Returns
    -------
    One row per target: ``targets``, ``temperature``, ``num_samples``, ``queries``,
    ``rows``, ``mean_entropy`` (bits, of the training targets per query),
    ``accuracy`` (``accuracy_low``, ``accuracy_high``), ``agreement``, ``n``, ``eval_set``, ``backend``.
    """
    service, quick = _setup(service, quick)
    report = _Report("soft_labels", progress)
    k = int(num_samples or (QUICK_STRATEGIES[-1][1] if quick else FULL_STRATEGIES[-1][1]))
    n_queries = _count("n_queries", n_queries) or (QUICK_SUBSET if quick else FULL_SUBSET)
    pool = distillation_rows(service, quick, rows)[:n_queries]
    texts = [_text(r) for r in pool]
    evalset = eval_set(quick, gold)
    reference = teacher_point(service, evalset, teacher)["predictions"]
    config = student_config(service, quick, **(train_overrides or {}))
    hard = strategy_rows(service, quick, rows, pool, 0.0, 1, teacher, report)
    sampled = strategy_rows(service, quick, rows, pool, 1.0, k, teacher, report)
    soft = soft_label_rows(sampled)
    runs = [("hard", 0.0, 1, [{"messages": r["messages"]} for r in hard], config),
            ("majority", 1.0, k, [{"messages": r["messages"]} for r in sampled], config),
            ("soft", 1.0, k, soft, TrainConfig(**{**asdict(config), "batch_size": max(
                1, round(config.batch_size * len(soft) / max(len(sampled), 1)))}))]
    table = []
    for name, temperature, samples, data, cfg in runs:
        point = student_point(service, data, cfg, evalset, report)
        table.append({"targets": name, "temperature": temperature, "num_samples": samples, "queries": len(texts),
                      "rows": len(data), "mean_entropy": _mean_entropy(data),
                      **_score(point["predictions"], evalset, reference), "n": len(evalset.texts),
                      "eval_set": evalset.name, "backend": _backend(service)})
    return report.done(table)


def _mean_entropy(rows: Sequence[Mapping]) -> float:
    """Mean entropy in bits of the targets per query (0 for hard labels)."""
    by_query: dict[Any, list[float]] = {}
    for i, r in enumerate(rows):
        by_query.setdefault(r.get("query", i), []).append(float(r.get("weight", 1.0)))
    entropies = [-sum(w * math.log2(w) for w in ws if w > 0) for ws in by_query.values()]
    return float(np.mean(entropies)) if entropies else 0.0


def label_distributions(service=None, quick: bool | None = None, *, n: int = 5, num_samples: int | None = None,
                        n_queries: int | None = None, rows: Sequence[Mapping] | None = None,
                        teacher: str | None = None) -> list[dict]:
    """The ``n`` queries the teacher is least sure of, with its vote shares (for a look at soft labels).

    Uses the same teacher answers as :func:`soft_labels`: its samples read back from the
    cache, and the greedy labels from the course's data when notebook 02 asked for them
    greedily (:func:`strategy_rows`), so that nothing already asked is asked again.
    Returns rows ``query``, ``greedy`` (the T=0 answer), ``distribution`` (``"de 0.6, en 0.4"``).
    """
    service, quick = _setup(service, quick)
    k = int(num_samples or (QUICK_STRATEGIES[-1][1] if quick else FULL_STRATEGIES[-1][1]))
    n_queries = _count("n_queries", n_queries) or (QUICK_SUBSET if quick else FULL_SUBSET)
    pool = distillation_rows(service, quick, rows)[:n_queries]
    hard = {_text(r): _label(r) for r in strategy_rows(service, quick, rows, pool, 0.0, 1, teacher)}
    sampled = strategy_rows(service, quick, rows, pool, 1.0, k, teacher)
    sampled.sort(key=lambda r: (r["teacher"]["confidence"], _text(r)))
    out = []
    for r in sampled[:n]:
        votes = r["teacher"]["votes"]
        total = sum(votes.values())
        dist = ", ".join(f"{label} {v / total:.1f}" for label, v in sorted(votes.items(), key=lambda kv: -kv[1]))
        text = _text(r)
        out.append({"query": text if len(text) <= 60 else text[:59] + "…", "greedy": hard.get(text), "distribution": dist})
    return out


# --------------------------------------------------------------------------- tables and plots


def show(table: Sequence[Mapping], columns: Sequence[str] | None = None):
    """A table as Markdown for a notebook cell (numbers rounded; ``None`` shown as a dash)."""
    from IPython.display import Markdown

    table = list(table)
    if not table:
        return Markdown("(no rows)")
    columns = list(columns or table[0])

    def cell(v) -> str:
        if v is None:
            return "–"
        if isinstance(v, bool):
            return "yes" if v else ""
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e-2 and v != 0 else f"{v:.3f}".rstrip("0").rstrip(".")
        return " ".join(str(v).split()).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in table]
    return Markdown("\n".join(lines))


def compare(table: Sequence[Mapping], name: str, value: str = "accuracy") -> str:
    """Each row's ``value`` against the first row's, and whether their 95% intervals overlap.

    What a notebook prints under an experiment's table instead of prose that claims an
    outcome: the outcome moves with the sample, the seed and the machine, and two points
    whose intervals overlap are not evidence of a difference.

    >>> print(compare([{"strategy": "T=0", "accuracy": 0.45, "accuracy_low": 0.37, "accuracy_high": 0.52},
    ...                {"strategy": "soft", "accuracy": 0.56, "accuracy_low": 0.50, "accuracy_high": 0.63}],
    ...               "strategy"))
    soft: accuracy 0.560 [0.500, 0.630] against T=0's 0.450 [0.370, 0.520]: +0.110, the intervals overlap (not a clear difference on this dev set)
    """
    table = list(table)
    if not table:
        return "(no rows)"
    first, lines = table[0], []
    low, high = f"{value}_low", f"{value}_high"
    for row in table[1:]:
        if None in (row.get(value), first.get(value)):
            lines.append(f"{row.get(name)}: no {value}")
            continue
        text = (f"{row.get(name)}: {value} {row[value]:.3f} [{row[low]:.3f}, {row[high]:.3f}] against "
                f"{first.get(name)}'s {first[value]:.3f} [{first[low]:.3f}, {first[high]:.3f}]: "
                f"{row[value] - first[value]:+.3f}")
        apart = row[low] > first[high] or row[high] < first[low]
        text += (", the intervals do not overlap (a difference this dev set shows)" if apart
                 else ", the intervals overlap (not a clear difference on this dev set)")
        if row.get("same_as_first") is not None:
            text += f"; the same answer as the first student on {row['same_as_first']:.0%} of dev queries"
        lines.append(text)
    offline = any(r.get("backend") == "local" for r in table)
    return "\n".join(lines + ([f"({OFFLINE_NOTE})"] if offline else []))


def _title(table: Sequence[Mapping], text: str, note: str = OFFLINE_NOTE) -> str:
    offline = any(r.get("backend") == "local" for r in table)
    return f"{text}\n({note})" if offline else text


def _percent(value, _pos=None) -> str:
    return f"{value:.0%}"


def _whiskers(table: Sequence[Mapping]):
    """Error bars from ``accuracy_low``/``accuracy_high`` (None when the table has no interval)."""
    if not all(r.get("accuracy_low") is not None and r.get("accuracy_high") is not None for r in table):
        return None
    return np.array([[r["accuracy"] - r["accuracy_low"] for r in table], [r["accuracy_high"] - r["accuracy"] for r in table]])


def _need(table: Sequence[Mapping], columns: Sequence[str]) -> list[Mapping]:
    table = list(table)
    if not table:
        raise ValueError("no rows to plot")
    missing = [c for c in columns if c not in table[0]]
    if missing:
        raise ValueError(f"the table has no column {missing[0]!r}; is it from the right experiment?")
    return table


def plot_prompt_ablation(table: Sequence[Mapping]) -> Figure:
    """Bar chart of teacher accuracy per prompt variant (and per teacher model, when there are several).

    The full prompt's bar is dark; each bar is labelled with its accuracy and the
    prompt's length in tokens. Returns a figure with one axis, or two when the table
    holds more than one teacher model.
    """
    table = _need(table, ["teacher", "prompt", "accuracy", "prompt_tokens"])
    default = table[0]["teacher"]
    prompts = [r for r in table if r["teacher"] == default]
    models = [r for r in table if r["prompt"] == "full prompt"]
    two = len(models) > 1
    fig = Figure(figsize=(11 if two else 7, 0.42 * max(len(prompts), len(models)) + 1.8), layout="constrained")
    axes = fig.subplots(1, 2 if two else 1, squeeze=False)[0]
    panels = [(axes[0], prompts, "prompt", f"Teacher {default}: which part of the prompt matters?")]
    if two:
        panels.append((axes[1], models, "teacher", "Teacher models, full prompt"))
    for ax, rows, key, title in panels:
        rows = sorted(rows, key=lambda r: -1 if r["accuracy"] is None else r["accuracy"])
        names = [r[key] for r in rows]
        values = [r["accuracy"] or 0.0 for r in rows]
        colors = ["#4c72b0" if r["prompt"] == "full prompt" and r["teacher"] == default else "#a1b8d8" for r in rows]
        bars = ax.barh(names, values, color=colors)
        labels = [("error" if r.get("error") else f"{r['accuracy']:.1%}")
                  + (f"  ({r['prompt_tokens']:,} tokens)" if r.get("prompt_tokens") else "") for r in rows]
        ax.bar_label(bars, labels=labels, padding=3, fontsize=8)
        ax.set_xlim(0, 1.35)  # room for the labels right of the bars
        ax.set_xticks(np.linspace(0, 1, 6))
        ax.xaxis.set_major_formatter(_percent)
        ax.set_xlabel(f"teacher accuracy on {rows[0]['eval_set']}" if rows else "teacher accuracy")
        ax.set_title(_title(table, title, "offline: the rule-based stand-in teacher, not an LLM"), fontsize=10)
    return fig


def plot_sampling(table: Sequence[Mapping]) -> Figure:
    """Two bar charts per sampling strategy: label noise of the teacher's data, and the student's accuracy.

    The right panel also shows the student's agreement with the teacher (lighter bars).
    """
    table = _need(table, ["strategy", "label_noise", "accuracy", "agreement"])
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    noise_ax, acc_ax = fig.subplots(1, 2)
    names = [r["strategy"] for r in table]
    x = np.arange(len(names))
    bars = noise_ax.bar(x, [r["label_noise"] or 0.0 for r in table], color="#c44e52")
    noise_ax.bar_label(bars, labels=[f"{r['label_noise']:.1%}" if r["label_noise"] is not None else "n/a" for r in table],
                       padding=2, fontsize=8)
    noise_ax.set_ylabel("labels differing from the reference")
    noise_ax.set_title(_title(table, f"Label noise of the teacher's data ({table[0]['queries']} pool queries)"), fontsize=10)
    width = 0.38
    acc = acc_ax.bar(x - width / 2, [r["accuracy"] for r in table], width, label="accuracy (gold)", color="#4c72b0",
                     yerr=_whiskers(table), capsize=3, error_kw={"elinewidth": 0.8, "ecolor": "0.3"})
    agr = acc_ax.bar(x + width / 2, [r["agreement"] for r in table], width, label="agreement (teacher)", color="#a1b8d8")
    acc_ax.bar_label(acc, fmt="{:.0%}", padding=2, fontsize=8)
    acc_ax.bar_label(agr, fmt="{:.0%}", padding=2, fontsize=8)
    acc_ax.set_ylim(0, 1.12)
    acc_ax.set_ylabel(f"student on {table[0]['eval_set']}")
    acc_ax.set_title(_title(table, "The student trained on those labels"), fontsize=10)
    acc_ax.legend(fontsize=8, loc="lower right")
    for ax in (noise_ax, acc_ax):
        ax.set_xticks(x, names)
        ax.set_xlabel("teacher sampling: temperature T, majority of K samples")
        ax.yaxis.set_major_formatter(_percent)
    noise_ax.margins(y=0.2)
    return fig


def plot_data_volume(table: Sequence[Mapping]) -> Figure:
    """Accuracy (left) and agreement with the teacher (right) against the number of teacher examples.

    One curve per predictor on a logarithmic x axis; the teacher's own accuracy is
    the dashed line on the left.
    """
    table = _need(table, ["predictor", "examples", "accuracy", "agreement"])
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    acc_ax, agr_ax = fig.subplots(1, 2, sharex=True)
    style = {"student": ("o-", "#4c72b0"), "baseline": ("s--", "#dd8452")}
    for predictor in dict.fromkeys(r["predictor"] for r in table):
        rows = sorted((r for r in table if r["predictor"] == predictor), key=lambda r: r["examples"])
        marker, color = style.get(predictor, ("^-", None))
        x = [r["examples"] for r in rows]
        acc_ax.plot(x, [r["accuracy"] for r in rows], marker, color=color, label=predictor)
        if all(r.get("accuracy_low") is not None for r in rows):  # the 95% interval as a band
            acc_ax.fill_between(x, [r["accuracy_low"] for r in rows], [r["accuracy_high"] for r in rows],
                                color=color, alpha=0.15, linewidth=0)
        agr_ax.plot(x, [r["agreement"] for r in rows], marker, color=color, label=predictor)
    if table[0].get("teacher_accuracy") is not None:
        acc_ax.axhline(table[0]["teacher_accuracy"], color="0.3", linestyle=":", label="teacher (with prompt)")
    sizes = sorted({r["examples"] for r in table})
    for ax, what in ((acc_ax, "accuracy on gold"), (agr_ax, "agreement with the teacher")):
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("teacher-labelled examples")
        ax.set_ylabel(what)
        ax.set_ylim(0, 1.02)
        ax.yaxis.set_major_formatter(_percent)
        ax.legend(fontsize=8, loc="lower right")
    acc_ax.set_title(_title(table, f"More teacher data ({table[0]['eval_set']})"), fontsize=10)
    agr_ax.set_title("How closely each one copies the teacher", fontsize=10)
    return fig


def plot_hyperparameters(table: Sequence[Mapping]) -> Figure:
    """Two heat maps over learning rate (columns) x rank or model (rows): final validation loss, dev accuracy.

    The recipe's default cell is outlined in red and marked "default"; the settings the
    other experiments use (:func:`student_config`), where they are not the default, in
    orange, "used here".
    """
    from matplotlib.patches import Rectangle

    table = _need(table, ["learning_rate", "model", "rank", "val_loss", "accuracy", "default"])
    by_model, by_rank = len({r["model"] for r in table}) > 1, len({r["rank"] for r in table}) > 1

    def row_of(r) -> str:  # one row per model, per rank, or per (model, rank) when both vary
        return ", ".join(([str(r["model"])] if by_model else []) + ([f"rank {r['rank']}"] if by_rank else [])) \
            or str(r["rank"])

    rows_keys = list(dict.fromkeys(row_of(r) for r in table))
    lrs = sorted({r["learning_rate"] for r in table})
    fig = Figure(figsize=(10, 1.0 * len(rows_keys) + 2.4), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = [("val_loss", "final validation loss (lower is better)", "viridis_r"),
              ("accuracy", f"accuracy on {table[0]['eval_set']}", "viridis")]
    for ax, (metric, title, cmap) in zip(axes, panels, strict=True):
        grid = np.full((len(rows_keys), len(lrs)), np.nan)
        for r in table:
            if r[metric] is not None:
                grid[rows_keys.index(row_of(r)), lrs.index(r["learning_rate"])] = r[metric]
        image = ax.imshow(grid, cmap=cmap, aspect="auto")
        bar = fig.colorbar(image, ax=ax, shrink=0.85)
        if metric == "accuracy":  # the cells say percent: so does the scale beside them
            bar.ax.yaxis.set_major_formatter(_percent)
        finite = grid[np.isfinite(grid)]
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                if np.isfinite(grid[i, j]):
                    text = f"{grid[i, j]:.0%}" if metric == "accuracy" else f"{grid[i, j]:.2f}"
                    dark = (grid[i, j] < middle) == (cmap == "viridis")
                    ax.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
        for r in table:
            i, j = rows_keys.index(row_of(r)), lrs.index(r["learning_rate"])
            if r.get("student") and not r["default"]:
                ax.add_patch(Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, edgecolor="#ff7f0e", linewidth=2,
                                       linestyle="--"))
                ax.text(j, i + 0.3, "used here", ha="center", va="center", fontsize=7, color="#ff7f0e")
            if r["default"]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#c44e52", linewidth=2.5))
                ax.text(j, i + 0.3, "default", ha="center", va="center", fontsize=7, color="#c44e52")
        ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
        ax.set_yticks(range(len(rows_keys)), rows_keys)
        ax.set_xlabel("learning rate")
        ax.set_ylabel(", ".join(["student model"] * by_model + ["LoRA rank"] * by_rank) or "LoRA rank")
        ax.set_title(_title(table, title), fontsize=10)
    return fig


def plot_soft_labels(table: Sequence[Mapping]) -> Figure:
    """Grouped bars per kind of target (hard, majority, soft): accuracy on gold and agreement with the teacher."""
    table = _need(table, ["targets", "accuracy", "agreement"])
    fig = Figure(figsize=(7, 3.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(table))
    width = 0.38
    acc = ax.bar(x - width / 2, [r["accuracy"] for r in table], width, label="accuracy (gold)", color="#4c72b0",
                 yerr=_whiskers(table), capsize=3, error_kw={"elinewidth": 0.8, "ecolor": "0.3"})
    agr = ax.bar(x + width / 2, [r["agreement"] for r in table], width, label="agreement (teacher)", color="#a1b8d8")
    ax.bar_label(acc, fmt="{:.1%}", padding=2, fontsize=8)
    ax.bar_label(agr, fmt="{:.1%}", padding=2, fontsize=8)
    names = {"hard": "hard\n(T=0 answer)", "majority": "majority\n(of K at T=1)", "soft": "soft\n(K vote shares)"}
    ax.set_xticks(x, [names.get(r["targets"], r["targets"]) for r in table])
    ax.set_ylim(0, 1.12)
    ax.yaxis.set_major_formatter(_percent)
    ax.set_ylabel(f"student on {table[0]['eval_set']}")
    ax.legend(fontsize=8, loc="lower right")
    k = max(r.get("num_samples", 1) for r in table)
    ax.set_title(_title(table, f"Hard vs soft labels, same {table[0]['queries']} queries, K={k}"), fontsize=10)
    return fig


__all__ = [
    "EvalSet", "cache_dir", "cached", "data_volume", "distillation_rows", "eval_set", "hyperparameter_grid",
    "label_distributions", "plot_data_volume", "plot_hyperparameters", "plot_prompt_ablation", "plot_sampling",
    "plot_soft_labels", "prompt_ablation", "prompt_variants", "recipe_defaults", "reference_labels",
    "resolve_quick", "sampling_strategies", "show", "soft_label_rows", "soft_labels", "strategy_rows", "student_config",
    "student_point", "teacher_data", "teacher_point",
]
