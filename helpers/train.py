"""Step 2 of prompt distillation: fine-tune the student on the teacher's answers, prompt left out.

:func:`train` drives any Tinker-compatible service client (real Tinker, or the
local backend) through the same calls: ``create_lora_training_client``,
``forward_backward``, ``optim_step``, ``save_state``, ``save_weights_for_sampler`` and
``create_sampling_client`` (or ``save_weights_and_get_sampling_client`` for validation,
and for a run with no folder to save to). As Tinker recommends, the next batch's
``forward_backward`` and ``optim_step`` are submitted before the previous result
is awaited, so the server never waits for the client.

Checkpoints (``save_state``) are written every ``save_every`` steps and at the
end, and ``progress.json`` in ``out_dir`` records them: running :func:`train`
again with the same data, settings and ``out_dir`` resumes from the last one and
ends with the same weights as an uninterrupted run (batches are shuffled from the
seed, so the order is the same).

A step that fails with a transient error (rate limit, timeout, lost connection) is
not retried in place, since the next step is already queued behind it: the run
goes back to its last checkpoint on a new client and replays the same batches, so
it too ends with an unbroken run's weights. Before the first checkpoint it starts
again from a fresh client of the same seed (or, with a ``training_client`` passed in
and no ``out_dir``, stops and says so).

Example
-------
>>> from helpers import connect
>>> from helpers.train import TrainConfig, train
>>> rows = [{"messages": [{"role": "user", "content": "Guten Morgen zusammen"},
...                       {"role": "assistant", "content": "de"}]}] * 8
>>> result = train(connect("local"), rows, TrainConfig(epochs=1, batch_size=4, val_fraction=0))
>>> len(result.history) == 2
True
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tinker import types

from .backend import context_length
from .dataio import (
    DataError,
    check_settings,
    conversation_problem,
    is_number,
    is_whole,
    read_json,
    write_text,
)
from .generate import (
    StallWatch,
    ask_with_retries,
    backoff,
    is_transient,
    one_line,
    result_with_retries,
    wait_awake,
)
from .labels import parse_answer
from .render import conversation, decode_answer, model_input, render_example, sampling_params

SCHEDULES = ("constant", "linear", "cosine")
RESTARTS = 6  # restarts in a row with no step gained between them; the next transient failure ends the run


@dataclass
class TrainConfig:
    """Settings of a student run. ``for_backend`` gives the course's defaults for each backend."""

    base_model: str = "local/tiny"
    rank: int = 32
    learning_rate: float = 3e-3
    lr_schedule: str = "linear"
    warmup_steps: int = 10
    # Locally 3: offline (tiny student, stand-in's labels, 12,981-query pool) 3 epochs scored as
    # 4 did (test accuracy 0.956 vs 0.955 and 0.959 at two seeds) in three quarters of the time.
    # On the 14,660-query pool, 5 epochs fit the pool better but agree with the teacher no more
    # on the test set (mean of five seeds 0.951, against 0.955) and take over 3 minutes.
    # With data/src/reserve's 52% more queries, 2 epochs fit 3 minutes and score as 3 do here.
    epochs: int = 3
    batch_size: int = 32
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.0
    # Weight on the prompt side: the query's own tokens and the chat markup around them
    # (next-token prediction on the query). The recipe, and the Tinker default, is 0: a
    # pretrained student already reads the languages and learns only the answer. The local
    # student starts from random weights; modelling the query teaches it the languages.
    # Measured offline (tiny local student, stand-in teacher's labels, 6,702-query pool,
    # 6 epochs, same time): test accuracy 0.886 at 0, 0.933 at 0.2, 0.942 at 0.5, 0.932 at 1.0.
    prompt_weight: float = 0.5
    grad_clip_norm: float = 1.0
    val_fraction: float = 0.05
    eval_every: int = 0  # steps; 0 = only at the end
    val_samples: int = 100  # validation examples sampled for accuracy (0: the loss only, val_accuracy None)
    save_every: int = 100
    seed: int = 0

    @classmethod
    def for_backend(cls, backend: str, quick: bool = False, **overrides) -> TrainConfig:
        """The recipe's defaults on Tinker (LoRA rank 32, lr 1e-4 linear, 4 epochs, batch 128);
        the settings that did best on 2 CPU cores locally (two and a half to four and a half
        minutes on the pool, by the CPU: the README's Benchmarks).

        ``quick`` is for the notebooks' and ``run --quick``'s small sample of the pool: one
        epoch on Tinker; locally 4 epochs in batches of 16, so that a thousand examples still
        make a few hundred steps (the tiny model needs steps more than it needs large batches).
        """
        if backend not in ("local", "tinker"):
            raise DataError(f"setting: backend must be one of local, tinker, got {backend!r}")
        if backend == "tinker":
            base = cls(base_model="Qwen/Qwen3-30B-A3B", rank=32, learning_rate=1e-4, lr_schedule="linear",
                       warmup_steps=0, epochs=1 if quick else 4, batch_size=128, grad_clip_norm=0.0, eps=1e-12,
                       prompt_weight=0.0)
        else:
            base = cls(batch_size=16, epochs=4) if quick else cls()
        return cls(**{**asdict(base), **overrides})

    def validate(self) -> None:
        """Raise ``DataError`` naming the first setting out of range or of the wrong type."""
        checks = [
            (isinstance(self.base_model, str) and self.base_model.strip() != "",
             f"base_model must be a model name, got {self.base_model!r}"),
            (is_number(self.learning_rate) and self.learning_rate > 0,
             f"learning_rate must be a finite number > 0, got {self.learning_rate!r}"),
            (is_whole(self.rank) and self.rank >= 1, f"rank must be a whole number >= 1, got {self.rank!r}"),
            (is_whole(self.batch_size) and self.batch_size >= 1, f"batch_size must be a whole number >= 1, got {self.batch_size!r}"),
            (is_whole(self.epochs) and self.epochs >= 1, f"epochs must be a whole number >= 1, got {self.epochs!r}"),
            (self.lr_schedule in SCHEDULES, f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}"),
            (is_number(self.val_fraction) and 0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction!r}"),
            (is_whole(self.save_every) and self.save_every >= 1, f"save_every must be a whole number >= 1, got {self.save_every!r}"),
            (is_number(self.prompt_weight) and 0 <= self.prompt_weight <= 1, f"prompt_weight must be in [0, 1], got {self.prompt_weight!r}"),
            (is_whole(self.warmup_steps) and self.warmup_steps >= 0, f"warmup_steps must be a whole number >= 0, got {self.warmup_steps!r}"),
            (is_whole(self.eval_every) and self.eval_every >= 0,
             f"eval_every must be a whole number >= 0 (0: only at the end), got {self.eval_every!r}"),
            (is_whole(self.val_samples) and self.val_samples >= 0, f"val_samples must be a whole number >= 0, got {self.val_samples!r}"),
            (is_whole(self.seed) and 0 <= self.seed < 2**32, f"seed must be a whole number from 0 to {2**32 - 1}, got {self.seed!r}"),
            (is_number(self.weight_decay) and self.weight_decay >= 0, f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}"),
            (is_number(self.beta1) and 0 <= self.beta1 < 1, f"beta1 must be in [0, 1), got {self.beta1!r}"),
            (is_number(self.beta2) and 0 <= self.beta2 < 1, f"beta2 must be in [0, 1), got {self.beta2!r}"),
            (is_number(self.eps) and self.eps > 0, f"eps must be a finite number > 0, got {self.eps!r}"),
            (is_number(self.grad_clip_norm) and self.grad_clip_norm >= 0,
             f"grad_clip_norm must be a finite number >= 0 (0: no clipping), got {self.grad_clip_norm!r}"),
        ]
        check_settings(self, checks)


def learning_rate_at(step: int, total: int, config: TrainConfig) -> float:
    """The learning rate of ``step`` (0-based) of ``total``: warm-up, then the schedule."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    if config.lr_schedule == "linear":
        return config.learning_rate * max(0.0, 1.0 - progress)
    if config.lr_schedule == "cosine":
        return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.learning_rate


def split(rows: Sequence[Any], val_fraction: float, seed: int,
          key: Callable[[Any], Any] | None = None) -> tuple[list, list]:
    """A seeded train/validation split (the same rows each time for the same seed).

    With ``key``, rows of one key (the same query asked twice) land on the same side, so
    validation never scores a query the student trained on: in a seeded random order, at a
    key's first row, all its rows go to validation if they fit in what is left of its share,
    else all to training (so validation never holds more than its share). Rows with distinct
    keys split exactly as without ``key``.

    >>> split(["a1", "b1", "a2", "c1"], 0.5, seed=0, key=lambda r: r[0])
    (['b1', 'c1'], ['a1', 'a2'])
    """
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_val = int(round(len(rows) * val_fraction))
    keys = [key(row) if key is not None else i for i, row in enumerate(rows)]
    sizes = Counter(keys)
    side: dict[Any, bool] = {}  # key -> in validation
    taken = 0
    for i in order:
        if keys[i] not in side:
            side[keys[i]] = taken + sizes[keys[i]] <= n_val
            taken += sizes[keys[i]] if side[keys[i]] else 0
    chosen = [side[k] for k in keys]
    val = [row for row, v in zip(rows, chosen, strict=True) if v]
    train_rows = [row for row, v in zip(rows, chosen, strict=True) if not v]
    return train_rows, val


def epoch_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """One epoch of batches: shuffled, then sorted by length within windows of 8 batches.

    Examples of similar length share a batch, so little compute goes to padding,
    while the batch order and contents stay random from epoch to epoch.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 8
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _check_rows(rows: Sequence[dict]) -> list[tuple[str, str, float]]:
    """(query, answer, weight) of every row, or a clear error for the first bad one."""
    if not rows:
        raise DataError("training data: no examples (empty data set)")
    out = []
    for i, row in enumerate(rows, start=1):
        if (problem := conversation_problem(row)) is not None:
            raise DataError(f"training data: example {i}: {problem}", example=i)
        turn = {m["role"]: m["content"] for m in row["messages"] if m.get("role") is not None}
        out.append((turn["user"], turn["assistant"].strip(), float(row.get("weight", 1.0))))
    return out


@dataclass
class TrainResult:
    """What a run leaves: per-step metrics, validation points, checkpoint paths, the student."""

    history: list[dict]
    validation: list[dict]
    checkpoints: list[str]
    sampler_path: str | None
    sampling_client: Any = field(repr=False, default=None)
    config: dict = field(default_factory=dict)
    seconds: float = 0.0
    first_step: int = 0  # steps already done when this call began: 0 fresh, all of them for a finished run reused

    def describe(self) -> str:
        """What this call did: trained, resumed, or reused a finished run.

        >>> TrainResult([{}] * 90, [], [], None, config={"base_model": "local/tiny"}, seconds=12.3, first_step=40).describe()
        'resumed local/tiny at step 40 of 90; trained the other 50 in 12 s'
        """
        model, steps = self.config.get("base_model", "the student"), len(self.history)
        if self.first_step >= steps:
            return f"reused the finished run of {model} ({steps} steps; nothing trained)"
        if self.first_step:
            return (f"resumed {model} at step {self.first_step} of {steps}; trained the other "
                    f"{steps - self.first_step} in {self.seconds:.0f} s")
        return f"trained {model} for {steps} steps in {self.seconds:.0f} s"


def accuracy_by_sampling(sampling_client, tokenizer, examples: Sequence[tuple[str, str, float]],
                         max_context: int | None = None) -> float:
    """Share of ``(query, answer)`` examples the model answers exactly, greedy, without a prompt.

    Answers are at most 8 tokens, fewer where the prompt leaves less room in ``max_context``
    (a server refuses a prompt and ``max_tokens`` that do not fit together); an example with
    no room at all counts as wrong. A request that fails transiently is asked again: sampling
    changes no weights, and a failure here must not send a training run back to a checkpoint.
    """
    if not examples:
        return float("nan")
    asks = []
    for query, _, _ in examples:
        prompt = model_input(tokenizer, [{"role": "user", "content": query}])
        room = 8 if max_context is None else min(8, max_context - prompt.length)
        asks.append(functools.partial(sampling_client.sample, prompt, 1, sampling_params(tokenizer, room))
                    if room >= 1 else None)
    futures = [ask() if ask else None for ask in asks]  # all sent before the first is awaited
    right = 0
    for fut, ask, (_, answer, _) in zip(futures, asks, examples, strict=True):
        if fut is not None:
            response = result_with_retries(fut, ask)
            right += parse_answer(decode_answer(tokenizer, response.sequences[0].tokens)) == answer
    return right / len(examples)


def fresh_names(name: str):
    """``name``, then ``name-1``, ``name-2``, ...: a save asked again after a transient failure
    takes the next one, since the failed try may have saved and a name is saved only once."""
    return (f"{name}-{attempt}" if attempt else name for attempt in itertools.count())


def _run_fingerprint(examples: Sequence[tuple[str, str, float]], config: TrainConfig) -> dict:
    """What a run depends on (its settings and every example), as ``progress.json`` stores it."""
    data_sha = hashlib.sha256(json.dumps(examples, ensure_ascii=False).encode("utf-8")).hexdigest()
    return json.loads(json.dumps({"config": asdict(config), "n": len(examples), "data_sha256": data_sha}))


def read_progress(path: str | Path) -> dict | None:
    """The record ``progress.json`` keeps of a run, or None when there is no such file.

    Raises ``DataError`` naming the file when it cannot be read or is not such a record
    (a JSON object with ``fingerprint``, ``step``, ``history``, ``validation``, ``checkpoints``).
    """
    path = Path(path)
    if not path.exists():
        return None
    fix = "delete it to train from the start"
    saved = read_json(path, fix)
    well_formed = (isinstance(saved, dict) and isinstance(saved.get("fingerprint"), dict)
                   and isinstance(saved.get("step"), int) and not isinstance(saved.get("step"), bool)
                   and all(isinstance(saved.get(k), list) for k in ("history", "validation", "checkpoints"))
                   and all(isinstance(c, str) for c in saved["checkpoints"]))
    if not well_formed:
        raise DataError(f"{path}: not a training progress record (a JSON object with fingerprint, step, history, "
                        f"validation and checkpoints); {fix}")
    inside = saved.get("checkpoints_in_folder")
    if isinstance(inside, list) and len(inside) == len(saved["checkpoints"]):
        saved["checkpoints"] = [_relocated(c, rel, path.parent) for c, rel in zip(saved["checkpoints"], inside, strict=True)]
    return saved


def same_run(out_dir: str | Path, rows: Sequence[dict], config: TrainConfig) -> bool | None:
    """Whether ``out_dir`` holds this run (the same data and settings), finished or not.

    None when it holds no run (neither ``progress.json`` nor ``checkpoint.json``); True when its
    ``progress.json`` records this data and ``config`` (so :func:`train` resumes or reuses it);
    False when it holds another run, or a ``checkpoint.json`` without the record of what it was
    trained on, which :func:`train` with this ``out_dir`` would replace.
    """
    out = Path(out_dir)
    return _holds_run(out, read_progress(out / "progress.json"), lambda: _run_fingerprint(_check_rows(rows), config))


def _holds_run(out: Path, saved: dict | None, fingerprint: Callable[[], dict]) -> bool | None:
    """:func:`same_run` from the folder's ``progress.json`` record ``saved`` and the run's
    ``fingerprint`` (computed only when there is a record to compare it with)."""
    if saved is None:
        return False if (out / "checkpoint.json").exists() else None
    return saved["fingerprint"] == fingerprint()


def train(
    service,
    rows: Sequence[dict],
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    callbacks: Sequence[Callable[[dict], None]] = (),
    training_client=None,
    progress: bool = False,
) -> TrainResult:
    """Fine-tune ``config.base_model`` on chat rows ``{"messages": [user, assistant]}``.

    Parameters
    ----------
    service : a service client from :func:`helpers.connect` (Tinker or local).
    rows : distillation data; a row may carry ``"weight"`` (soft labels use it).
    config : :class:`TrainConfig`; defaults to the course's recipe for ``service``'s backend,
        ``TrainConfig.for_backend("local")`` for the local backend, ``("tinker")`` for any other
        (Qwen/Qwen3-30B-A3B, LoRA rank 32: not a local model name sent to Tinker).
    out_dir : where ``progress.json`` and ``checkpoint.json`` go; enables resuming. A run with
        other data or settings there is replaced (:func:`same_run` tells beforehand). The
        weights they point to are kept where ``service`` keeps checkpoints: on Tinker's
        servers, locally in ``connect("local", store=...)``'s folder (pass
        ``store=out_dir / "weights"``, as the command line does, to keep them in ``out_dir``).
    callbacks : called with every metrics dict (steps and validations), e.g. a live plot.
    training_client : use this client instead of creating one (no resuming then; a transient
        failure before the first checkpoint stops the run).
    progress : show a tqdm bar of the steps, with the last loss (the command line does; in a
        notebook, :class:`helpers.plots.LiveLossPlot` shows more).
    """
    if config is None:  # no service (a training client given alone): the local default, as before
        remote = service is not None and getattr(service, "backend", None) != "local"
        config = TrainConfig.for_backend("tinker" if remote else "local")
    if not isinstance(config, TrainConfig):
        raise DataError(f"setting: config must be a TrainConfig, e.g. TrainConfig(epochs=1); got a {type(config).__name__}")
    config.validate()
    examples = _check_rows(rows)
    train_ex, val_ex = split(examples, config.val_fraction, config.seed, key=lambda ex: ex[0])  # by query text
    if not train_ex:
        raise DataError(f"setting: val_fraction={config.val_fraction} leaves none of the {len(examples)} examples "
                        "for training; lower it (0 keeps them all for training)")
    out = Path(out_dir) if out_dir is not None else None
    progress_file = out / "progress.json" if out else None
    fingerprint = _run_fingerprint(examples, config)
    start_step, history, validation, checkpoints = 0, [], [], []
    resume_path = None
    restart_point: tuple[int, str] | None = None  # (step, state path) a failed run goes back to
    if progress_file and training_client is None:
        saved = read_progress(progress_file)
        if saved is not None and saved["fingerprint"] == fingerprint and saved["checkpoints"]:
            start_step, history, validation = saved["step"], saved["history"], saved["validation"]
            checkpoints = saved["checkpoints"]
            resume_path = checkpoints[-1]
            restart_point = (start_step, resume_path)
        elif _holds_run(out, saved, lambda: fingerprint) is False:
            # said, not asked: the library replaces (the command line refuses without --overwrite)
            print(f"train: {out} holds a run with other data or settings; this run starts at step 1 and replaces it",
                  file=sys.stderr, flush=True)
    started = time.time()
    own_client = training_client is None

    def open_client(state_path: str | None):
        """A training client resumed from ``state_path`` (weights and optimizer), or a fresh one."""
        if state_path:
            return service.create_training_client_from_state_with_optimizer(state_path).result()
        return service.create_lora_training_client(config.base_model, rank=config.rank, seed=config.seed).result()

    steps_per_epoch = math.ceil(len(train_ex) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if start_step == 0 and config.warmup_steps >= total:  # said, not refused: a small trial run is legitimate
        print(f"train: warmup_steps={config.warmup_steps} is not fewer than the run's {total} steps, so the learning "
              f"rate rises to {learning_rate_at(total - 1, total, config):.3g} and never reaches learning_rate="
              f"{config.learning_rate:g}; lower warmup_steps for a run this short", file=sys.stderr, flush=True)

    def student_record() -> dict:
        """What ``checkpoint.json`` says of this run's student, beside its ``sampler_path``."""
        return json.loads(json.dumps({
            "base_model": config.base_model, "state_path": checkpoints[-1], "config": asdict(config), "steps": total,
            "examples": len(train_ex), "validation": validation[-1] if validation else None}))

    def saved_student() -> str | None:
        """The sampler path ``checkpoint.json`` holds for exactly this run, if it holds one."""
        try:
            saved = read_checkpoint_info(out)
        except DataError:  # none yet, or broken: written anew at the end
            return None
        return saved["sampler_path"] if all(saved.get(k) == v for k, v in student_record().items()) else None

    if training_client is None and start_step >= total and (sampler_path := saved_student()):
        # a finished run asked again: its student is saved, and sampling it needs no trainer (on
        # Tinker, reopening one would load the weights and the optimizer's state onto a new run)
        sampling_client = ask_with_retries(lambda: service.create_sampling_client(model_path=sampler_path))
        return TrainResult(history, validation, checkpoints, sampler_path, sampling_client, asdict(config),
                           time.time() - started, first_step=start_step)
    if training_client is None:
        training_client = open_client(resume_path)
    tokenizer = training_client.get_tokenizer()

    def datum(q, a, w):
        """The datum the client trains on, and the weights of its answer tokens alone."""
        example = render_example(tokenizer, conversation(q, a))
        return example.to_datum(w, config.prompt_weight), np.asarray(example.weights[1:], dtype=np.float32) * w

    train_data, answer_weights = map(list, zip(*[datum(*ex) for ex in train_ex], strict=True))
    val_pairs = [datum(*ex) for ex in val_ex]
    val_data, val_weights = [d for d, _ in val_pairs], [m for _, m in val_pairs]
    # the local clients say; a Tinker server says per model. A too long row stops the run before it starts
    limit = getattr(training_client, "max_context", None)
    if limit is None and service is not None:
        limit = context_length(service, config.base_model)
    for ex, d in zip(train_ex + val_ex, train_data + val_data, strict=True):  # the run before it starts
        if limit and d.model_input.length > limit:
            i = examples.index(ex) + 1
            raise DataError(f"training data: example {i}: {d.model_input.length} tokens, more than "
                            f"{config.base_model}'s context of {limit}; shorten or drop it", example=i)
    lengths = [d.model_input.length for d in train_data]
    @functools.lru_cache(maxsize=1)  # one epoch's batches at a time, made when it starts: --epochs may be huge
    def batches_of(epoch: int) -> list[list[int]]:
        return epoch_batches(lengths, config.batch_size, random.Random(config.seed * 1000 + epoch))

    def batch_of(step: int) -> list[int]:
        epoch, index = divmod(step, steps_per_epoch)
        return batches_of(epoch)[index]

    def kept() -> str:
        if restart_point is None or out is None:
            return "there is no checkpoint to resume from yet, so it starts again"
        if own_client:
            return f"it resumes from its last checkpoint, step {restart_point[0]}"
        # a client passed in is trained as it is: only a call that opens its own resumes
        return (f"it starts again, as it was given a training_client; without training_client it resumes from "
                f"its last checkpoint, step {restart_point[0]}")

    watch = StallWatch("training", kept)  # says so when the server goes quiet; ticked by every record
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=start_step, unit="step", desc="training", disable=not progress, dynamic_ncols=True)

    def record(info: dict) -> None:
        watch.tick()
        if info["kind"] == "step":
            bar.update(info["step"] - bar.n)
            bar.set_postfix(loss=f"{info['loss']:.4f}", refresh=False)
        elif info["kind"] == "restart":
            bar.reset(total)
            bar.update(info["step"])
        for cb in callbacks:
            try:
                cb(info)
            except Exception as e:
                e.raised_by_callback = True  # the caller's own error: stop, never replay it
                raise

    def save_progress(step: int) -> None:
        nonlocal restart_point
        if progress_file:
            # nothing is in flight here and saving changes no weights: a transient failure is asked again in place
            names = fresh_names(f"step-{step:06d}")
            path = ask_with_retries(lambda: training_client.save_state(next(names))).path
            checkpoints.append(path)
            state = {"fingerprint": fingerprint, "step": step, "history": history, "validation": validation,
                     "checkpoints": checkpoints, "checkpoints_in_folder": [_path_inside(c, out) for c in checkpoints]}
            write_text(progress_file, json.dumps(state))
            restart_point = (step, path)  # once progress.json holds it: a next call resumes from here

    def validate(step: int) -> None:
        if not val_data:
            return
        # neither call changes the weights, so a transient failure is simply asked again
        fwd = ask_with_retries(lambda: training_client.forward(val_data, "cross_entropy"))
        acc = None  # val_samples=0: the loss only, no sampling (and no NaN in progress.json's JSON)
        if config.val_samples:
            sampler = ask_with_retries(training_client.save_weights_and_get_sampling_client)
            acc = accuracy_by_sampling(sampler, tokenizer, val_ex[: config.val_samples], limit)
        point = {"step": step, "val_loss": answer_loss(fwd, val_weights, weighted=True), "val_accuracy": acc}
        validation.append(point)
        record({"kind": "validation", **point})

    def step_request(step: int) -> _Pending:
        indices = batch_of(step)
        batch = [train_data[i] for i in indices]
        lr = learning_rate_at(step, total, config)
        adam = types.AdamParams(learning_rate=lr, beta1=config.beta1, beta2=config.beta2, eps=config.eps,
                                weight_decay=config.weight_decay, grad_clip_norm=config.grad_clip_norm)
        fb = training_client.forward_backward(batch, "cross_entropy")
        opt = training_client.optim_step(adam)
        return _Pending(step, lr, fb, opt, [answer_weights[i] for i in indices], sum(d.model_input.length for d in batch))

    in_flight: list[_Pending] = []  # submitted, not yet awaited: at most this step and the one before

    def run_from(first: int) -> None:
        """Steps ``first`` to the end, each submitted before the previous one is awaited."""
        tick = time.time()
        for step in range(first, total):
            in_flight.append(step_request(step))
            if len(in_flight) == 2:
                tick = _finish(in_flight.pop(0), history, record, tick)
            done = step + 1
            evaluate_now = bool(config.eval_every) and done % config.eval_every == 0 and done < total
            save_now = done % config.save_every == 0 and done < total
            if evaluate_now or save_now:  # both need this step's weights: wait for it first
                tick = _finish(in_flight.pop(0), history, record, tick)
            if evaluate_now:
                validate(done)
            if save_now:
                save_progress(done)
        if in_flight:
            _finish(in_flight.pop(0), history, record, tick)
        if not validation or validation[-1]["step"] != total:
            validate(total)
        if out is not None and (restart_point is None or restart_point[0] != total):
            save_progress(total)

    # A transient failure cannot be retried in place: the next step is already queued behind
    # it, and a repeated request would run out of order (or an optim_step would take two
    # batches' gradients). So the run goes back to its last checkpoint, on a fresh client,
    # and replays from there; the batches are the same, so the weights end as they would have.
    first, furthest, failures, reopen, reopen_path = start_step, start_step, 0, False, None
    try:
        while True:
            try:
                if reopen:  # in the try: a failure to reopen counts as one more failure
                    training_client, reopen = open_client(reopen_path), False
                with watch:
                    run_from(first)
                break
            except Exception as error:
                if not is_transient(error) or getattr(error, "raised_by_callback", False):
                    raise
                # The old client's queued requests are left to finish or fail on their own: the new
                # client starts from a checkpoint and shares no state with them.
                in_flight.clear()
                failures = 1 if len(history) > furthest else failures + 1  # counted since the run last got further
                furthest = max(furthest, len(history))
                if failures > RESTARTS:
                    raise
                time.sleep(backoff(failures))
                if service is None:  # a training client given alone: no service to open a fresh one from
                    raise RuntimeError(f"training: a step failed ({one_line(error)}) and, given no service, the run "
                                       "cannot open a fresh client to go back to a checkpoint; pass the service "
                                       "client, or retry the run") from error
                if restart_point is not None:
                    (first, reopen_path), reopen = restart_point, True
                elif own_client:
                    first, reopen_path, reopen = 0, None, True
                else:
                    raise RuntimeError(f"training: a step failed ({one_line(error)}) before any checkpoint; pass out_dir "
                                       "so that the run can go back to one, or retry the run") from error
                del history[first:]
                validation[:] = [v for v in validation if v["step"] <= first]
                record({"kind": "restart", "step": first, "error": one_line(error)})
    except KeyboardInterrupt as e:  # shown under the traceback (a notebook's stop button, Ctrl-C)
        e.add_note(f"training interrupted after step {len(history)} of {total}: run the same call again; {kept()}")
        raise
    finally:
        bar.close()
    # the weights are final here: saving them changes nothing, so a transient failure is asked again
    sampler_path = None
    if out is not None:
        sampler_path = saved_student()  # a finished run given its own client: its student is already saved
        if sampler_path is None:
            names = fresh_names("final")
            sampler_path = ask_with_retries(lambda: training_client.save_weights_for_sampler(next(names))).path
            student = {"sampler_path": sampler_path, **student_record()}
            for key in ("sampler_path", "state_path"):  # local weights saved in the folder move and copy with it
                if (inside := _path_inside(student[key], out)) is not None:
                    student[f"{key}_in_folder"] = inside
            write_text(out / "checkpoint.json", json.dumps(student, indent=1))
    # the student as saved, or (with no folder to save to) a snapshot of the weights
    sampling_client = ask_with_retries(lambda: training_client.create_sampling_client(sampler_path) if sampler_path
                                       else training_client.save_weights_and_get_sampling_client())
    return TrainResult(history, validation, checkpoints, sampler_path, sampling_client, asdict(config), time.time() - started,
                       first_step=start_step)


def read_checkpoint_info(directory: str | Path) -> dict:
    """``DIR/checkpoint.json`` as written by :func:`train`, with a clear error."""
    path = Path(directory) / "checkpoint.json"
    if not path.exists():
        try:
            saved = read_progress(Path(directory) / "progress.json")
        except DataError:
            saved = None
        if saved is not None:  # a run stopped before its end: say so, and how it goes on
            raise DataError(f"{path}: no such file: the training in {directory} has not finished (saved at step "
                            f"{saved['step']}); run the same `python -m helpers train` command again to resume it")
        raise DataError(f"{path}: no such file; is {directory} a folder written by `python -m helpers train --out`?")
    info = read_json(path)
    if not isinstance(info, dict) or not isinstance(info.get("sampler_path"), str):
        raise DataError(f"{path}: missing \"sampler_path\" (training did not finish?)")
    for key in ("sampler_path", "state_path"):  # a folder moved or copied since: its own weights
        if isinstance(info.get(key), str):
            info[key] = _relocated(info[key], info.get(f"{key}_in_folder"), Path(directory))
    return info


def finished_run_record(directory: str | Path) -> dict | None:
    """``DIR/progress.json``'s record of the finished student in ``DIR/checkpoint.json``, or None
    when ``progress.json`` is missing or now records another run (one with other data or
    settings, started in the same folder and not finished: ``checkpoint.json`` keeps the
    student it replaces until it finishes)."""
    info = read_checkpoint_info(directory)
    saved = read_progress(Path(directory) / "progress.json")
    if saved is None or not saved["checkpoints"] or saved["checkpoints"][-1] != info.get("state_path"):
        return None
    return saved


def _relocated(local_path: str, inside, folder: Path) -> str:
    """``local_path``, or the same weights where they lie now, when ``inside`` (their place in
    ``folder`` when saved) names a folder there: a run's folder moved or copied keeps answering,
    and a copy answers from its own weights, never from the original's."""
    if isinstance(inside, str) and (folder / inside).is_dir():
        return f"local://{(folder / inside).resolve()}"
    return local_path


def _path_inside(sampler_path: str, folder: Path) -> str | None:
    """A ``local://`` path's place relative to ``folder``, when it lies inside it; else None."""
    if not sampler_path.startswith("local://"):
        return None
    try:
        return Path(sampler_path[len("local://"):]).resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return None


@dataclass
class _Pending:
    step: int
    lr: float
    fb: Any
    opt: Any
    answer_weights: list
    n_tokens: int


def answer_loss(output, answer_weights: Sequence, weighted: bool = False) -> float:
    """Loss per answer token of a ``forward``/``forward_backward`` output.

    Computed from the per-datum ``logprobs`` in ``loss_fn_outputs`` and the answer tokens'
    weights, so that it means the same whatever ``prompt_weight`` the step trained with.
    Divided by the number of answer tokens, or with ``weighted`` by their total weight.
    """
    total = sum(-float((o["logprobs"].to_numpy() * w).sum()) for o, w in zip(output.loss_fn_outputs, answer_weights, strict=True))
    count = sum(float(w.sum()) if weighted else int((w > 0).sum()) for w in answer_weights)
    return total / max(count, 1e-9 if weighted else 1)


def _finish(p: _Pending, history: list, record, tick: float) -> float:
    """Wait for one step's results, record its metrics, and return the time it ended.

    Any error propagates: :func:`train` goes back to the last checkpoint after a transient one.
    """
    wait_awake(p.fb)  # Ctrl-C stops a run waiting on a stalled server
    out = p.fb.result()
    wait_awake(p.opt)
    p.opt.result()
    now = time.time()
    info = {"kind": "step", "step": p.step + 1, "loss": answer_loss(out, p.answer_weights),
            "learning_rate": p.lr, "tokens": p.n_tokens, "tokens_per_second": p.n_tokens / max(now - tick, 1e-9)}
    history.append(info)
    record(info)
    return now
