"""Step 1 of prompt distillation: the teacher labels queries, the pairs become training data.

The teacher reads the long prompt plus one query and answers; the pair
(query, label), *without* the prompt, is one row of the student's data, in the
chat format tinker-cookbook's conversation loader reads. :func:`generate` does
this for a whole query file against any sampling client with Tinker's
interface (a Tinker model, or the offline stand-in ``local/policy-teacher``):

* **Concurrent.** Requests run on asyncio, at most ``concurrency`` in flight,
  with a ``tqdm`` progress bar (rate, ETA) in terminals and notebooks alike.
* **Resumable.** Every result is appended to ``<out>.partial`` (one complete
  JSON line, flushed) the moment it arrives, keyed by a content hash of
  (teacher model, prompt, sampling settings, query). Running the same command
  again after Ctrl-C, a dead kernel or ``kill -9`` skips what is done; the
  final ``<out>`` is written atomically at the end, in the queries' order, and
  is byte-identical to what an uninterrupted run writes. (Lines are flushed to
  the operating system, not fsynced: they survive a killed process, not a
  power cut.)
* **Honest about failures.** Transient errors (rate limits, timeouts, server
  errors) are retried with exponential backoff and full jitter, a bounded
  number of times. Unparseable answers, low-agreement votes and requests that
  finally fail go to ``<out>.rejects.jsonl`` with their reason, and every count
  is in ``<out>.summary.json``: nothing is dropped silently.
* **Voting.** ``num_samples=K`` asks for K answers per query; the majority
  label wins (ties go to the label listed first in :data:`helpers.labels.LABELS`)
  and its vote share is stored as ``confidence``. Rows under ``min_agreement``
  are dropped and counted.

Duplicate queries are labelled once and written once; empty queries are
skipped; both are counted. An existing ``<out>`` that this function did not
write with the same teacher, prompt, settings and queries is never replaced
unless ``overwrite=True``; one that it did is reused, ``overwrite`` or not (it would
label the same queries the same way again, paid for on Tinker: delete it to label again).

Example
-------
>>> import tempfile, pathlib
>>> from helpers import connect
>>> from helpers.generate import GenerateConfig, generate
>>> teacher = connect("local").create_sampling_client(base_model="local/policy-teacher").result()
>>> out = pathlib.Path(tempfile.mkdtemp()) / "distill.jsonl"
>>> queries = ["Guten Morgen, wie geht es dir heute?", "Guten Morgen, wie geht es dir heute?", "  "]
>>> summary = generate(teacher, queries, out, config=GenerateConfig(concurrency=4), progress=False)
>>> summary.rows, summary.duplicates, summary.empty
(1, 1, 1)
>>> out.read_text().count('"role": "assistant", "content": "de"')
1
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import hashlib
import inspect
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

from .backend import redact  # every error text passes through one_line, without the API key
from .dataio import (
    DataError,
    check_settings,
    check_writable,
    dumps,
    is_number,
    is_whole,
    iter_jsonl,
    read_queries,
    text_list,
    write_jsonl,
    write_text,
)
from .labels import LABELS, parse_answer
from .prompt import DEFAULT_PROMPT, teacher_messages
from .render import conversation, decode_answer, model_input, prompt_tokens, sampling_params

TINKER_TEACHER = "Qwen/Qwen3-30B-A3B"
"""The teacher on Tinker unless told otherwise."""

LOCAL_TEACHER = "local/policy-teacher"
"""The offline stand-in teacher (``helpers.local.TEACHER_MODEL``)."""

REJECT_REASONS: tuple[str, ...] = ("unparsed", "low_agreement", "error", "retries_exhausted")
"""Why a query has no row: no sample named a label; the vote share was under
``min_agreement``; the request failed with a permanent error; transient errors
outlasted ``max_retries``."""

FORMAT_VERSION = 1  # part of every key: bump it when the journal or the rows change meaning

STALL_NOTICE_SECONDS = 60.0
"""With requests in flight and no answer for this long, generation, training and evaluation say
so on stderr, once per stall (:class:`StallWatch`). A server that stops answering is otherwise
silent: Tinker's SDK retries a lost connection quietly, for up to two hours, before it gives up."""


class TransientError(RuntimeError):
    """An error worth retrying. Raise it from a wrapper or a test teacher."""


def _transient_types() -> tuple[type[BaseException], ...]:
    import tinker

    names = ("RateLimitError", "APITimeoutError", "APIConnectionError", "InternalServerError")
    types_ = (TransientError, TimeoutError, ConnectionError) + tuple(getattr(tinker, n) for n in names if hasattr(tinker, n))
    try:  # the SDK's "promise expired, send the request again" (HTTP 410)
        from tinker.lib.retryable_exception import RetryableException
    except ImportError:
        return types_
    return (*types_, RetryableException)


TRANSIENT_ERRORS = _transient_types()
"""Errors retried with backoff; every other exception is permanent for that query."""


def is_transient(error: BaseException) -> bool:
    """True for rate limits, timeouts, lost connections and server errors (see :data:`TRANSIENT_ERRORS`),
    and for a Tinker request that failed on the server's side (``RequestFailedError`` of category
    ``Server``; a ``User`` error, such as a bad request, is permanent)."""
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    import tinker

    request_failed = getattr(tinker, "RequestFailedError", ())
    return isinstance(error, request_failed) and str(getattr(error, "category", "")).lower() == "server"


def backoff(attempt: int, base: float = 0.05, cap: float = 2.0, rng=random) -> float:
    """Seconds to wait before retry ``attempt`` (0 for the first): a random time in
    ``[0, min(cap, base * 2**attempt)]`` ("full jitter", so that clients do not retry in step)."""
    return rng.uniform(0, min(cap, base * 2**attempt))


def inner_future(future):
    """The ``concurrent.futures.Future`` behind ``future``: Tinker's ``APIFuture`` (and the local
    backend's) hand theirs out with ``.future()``; any other future is itself."""
    return future.future() if callable(getattr(future, "future", None)) else future


def wait_awake(future) -> None:
    """Wait until ``future`` is done, waking five times a second.

    Python runs a signal's handler between bytecodes of the main thread: a Ctrl-C that lands
    in another thread, or just before a blocking wait begins, waits for that wait to end, and
    the answer of a stalled server never comes. Futures with no ``concurrent.futures.Future``
    behind them (:func:`inner_future`) are left to ``.result()``.
    """
    inner = inner_future(future)
    if isinstance(inner, concurrent.futures.Future):
        while not inner.done():
            concurrent.futures.wait([inner], timeout=0.2)


def result_with_retries(future, resubmit, retries: int = 6):
    """``future.result()``; after a transient error, ``resubmit()`` gives a new future to wait for.

    Up to ``retries`` times, each after a jittered wait of at most ``min(2, 0.05 * 2**n)``
    seconds; any other error, or the last transient one, propagates. For the blocking
    callers (training's steps, evaluation's requests); generation has its own async retries.
    """
    for attempt in range(retries + 1):
        try:
            wait_awake(future)
            return future.result()
        except Exception as e:
            if not is_transient(e) or attempt == retries:
                raise
            time.sleep(backoff(attempt))
            future = resubmit()


def ask_with_retries(submit: Callable[[], Any], retries: int = 6):
    """``submit()``'s result, asked again after a transient error (:func:`result_with_retries`
    for a call that is made and awaited at once, with nothing else in flight)."""
    return result_with_retries(submit(), submit, retries)


def one_line(error: BaseException, limit: int = 300) -> str:
    """``"ClassName: message"`` on one line, at most ``limit`` characters, without the API key.

    Every error text that a run records (generation's journal and rejects, training's
    progress) or shows comes through here; the key is taken out of the whole text before it
    is cut, so that no piece of it is left at the cut.
    """

    message = redact(" ".join(str(error).split()))
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class StallWatch:
    """Says once per stall, on stderr, that nothing has come back for :data:`STALL_NOTICE_SECONDS`.

    ``with StallWatch("teacher", lambda: "the 40 answers so far are kept") as watch:`` then
    ``watch.tick()`` on every answer. A thread watches, so the blocking callers (training,
    evaluation) are covered as well as generation's event loop. ``kept`` says, at the time of
    the notice, what an interrupted run keeps.
    """

    def __init__(self, what: str, kept: Callable[[], str]):
        self.what, self.kept = what, kept
        self.last = time.monotonic()
        self._stop: threading.Event | None = None  # both made anew on each entry
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        self.last = time.monotonic()

    def _watch(self, stop: threading.Event) -> None:
        noticed = False
        while not stop.wait(min(5.0, STALL_NOTICE_SECONDS / 4)):
            quiet = time.monotonic() - self.last
            if quiet < STALL_NOTICE_SECONDS:
                noticed = False
            elif not noticed:
                noticed = True
                from tqdm.auto import tqdm

                tqdm.write(f"{self.what}: no answer for {quiet:.0f} s; the server may be down or overloaded, or "
                           "the account's billing blocked (the SDK waits out a 402 for up to an hour), and the "
                           "SDK keeps retrying. To stop, interrupt (Ctrl-C, or the notebook's stop button) and run it "
                           f"again later: {self.kept()}.", file=sys.stderr)

    def __enter__(self) -> StallWatch:  # may be entered again after it exits (training's restarts)
        self.tick()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(self._stop,), name=f"stall-watch-{self.what}",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- settings


@dataclass
class GenerateConfig:
    """Settings of a generation run.

    Parameters
    ----------
    teacher_model : model name the CLI samples from; None is the backend's default
        (see :func:`default_teacher`). Also the name recorded in the data when
        ``generate`` is not told one.
    temperature : sampling temperature; 0 is greedy.
    num_samples : K answers per query, combined by majority vote.
    top_p : nucleus sampling threshold.
    max_tokens : longest answer, in tokens.
    seed : base seed; each query samples with a seed derived from it and the query,
        so results do not depend on the order requests happen to run in. On Tinker a
        request for K > 1 answers goes without a seed (see :func:`_repeats_seeded_samples`).
    min_agreement : rows whose winning vote share is below this are dropped (rejects).
    concurrency : requests in flight at once.
    max_retries : retries of a request after transient errors (attempts = 1 + max_retries).
    backoff_base, backoff_max : retry ``n`` waits a random time in
        ``[0, min(backoff_max, backoff_base * 2**(n-1))]`` seconds ("full jitter").
    """

    teacher_model: str | None = None
    temperature: float = 0.0
    num_samples: int = 1
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int = 0
    min_agreement: float = 0.0
    concurrency: int = 32
    max_retries: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0

    def validate(self) -> None:
        """Raise ``DataError("setting: ...")`` naming the first setting out of range."""
        checks = [
            (self.teacher_model is None or (isinstance(self.teacher_model, str) and self.teacher_model.strip() != ""),
             f"teacher_model must be a model name or None, got {self.teacher_model!r}"),
            (is_number(self.temperature) and self.temperature >= 0, f"temperature must be >= 0, got {self.temperature!r}"),
            (is_whole(self.num_samples) and self.num_samples >= 1, f"num_samples must be a whole number >= 1, got {self.num_samples!r}"),
            (not (is_whole(self.num_samples) and is_number(self.temperature)) or self.num_samples == 1
             or self.temperature > 0, f"num_samples > 1 needs a temperature > 0: greedy answers are all the same, so "
             f"{self.num_samples} of them cost {self.num_samples} times one and vote as one (got temperature "
             f"{self.temperature!r})"),
            (is_number(self.top_p) and 0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p!r}"),
            (is_whole(self.max_tokens) and self.max_tokens >= 1, f"max_tokens must be a whole number >= 1, got {self.max_tokens!r}"),
            (is_whole(self.seed) and self.seed >= 0, f"seed must be a whole number >= 0, got {self.seed!r}"),
            (is_number(self.min_agreement) and 0 <= self.min_agreement <= 1, f"min_agreement must be in [0, 1], got {self.min_agreement!r}"),
            (is_whole(self.concurrency) and self.concurrency >= 1, f"concurrency must be a whole number >= 1, got {self.concurrency!r}"),
            (is_whole(self.max_retries) and self.max_retries >= 0, f"max_retries must be a whole number >= 0, got {self.max_retries!r}"),
            (is_number(self.backoff_base) and self.backoff_base >= 0, f"backoff_base must be >= 0 seconds, got {self.backoff_base!r}"),
            (is_number(self.backoff_max) and self.backoff_max >= 0, f"backoff_max must be >= 0 seconds, got {self.backoff_max!r}"),
        ]
        check_settings(self, checks)

    def sampling(self) -> dict[str, Any]:
        """The settings that change the teacher's answers (part of every result's key)."""
        return {"temperature": float(self.temperature), "top_p": float(self.top_p), "max_tokens": self.max_tokens,
                "num_samples": self.num_samples, "seed": self.seed}


def default_teacher(service) -> str:
    """The teacher model for a service client: the stand-in offline, Qwen3-30B-A3B on Tinker."""
    return LOCAL_TEACHER if getattr(service, "backend", None) == "local" else TINKER_TEACHER


def teacher_model_name(teacher, teacher_name: str | None = None, config: GenerateConfig | None = None) -> str:
    """The name recorded for ``teacher``: ``teacher_name``, else ``config.teacher_model``, else
    the client's ``model_path`` or ``get_base_model()``.

    Pass ``teacher_name`` for a fine-tuned teacher on Tinker: its client only knows the base model.
    """
    name = teacher_name or (config.teacher_model if config else None) or getattr(teacher, "model_path", None)
    if not name and hasattr(teacher, "get_base_model"):
        name = teacher.get_base_model()
    if not isinstance(name, str) or not name.strip():
        raise DataError("setting: cannot tell the teacher's model name; pass teacher_name")
    return name


# --------------------------------------------------------------------------- summary


@dataclass
class GenerateSummary:
    """What a run produced, also saved as ``<out>.summary.json``.

    ``rows + sum(rejects.values()) == distinct`` and ``sum(labels.values()) == rows``.
    ``labelled`` queries were answered in this run, ``resumed`` came from an earlier,
    interrupted one; ``retries`` and the token figures cover both.
    """

    out: str
    teacher: str
    rows: int
    labels: dict[str, int]
    rejects: dict[str, int]
    queries: int  # input items, empty ones and duplicates included
    distinct: int  # distinct non-empty queries
    duplicates: int
    empty: int
    labelled: int
    resumed: int
    retries: int
    wall_seconds: float
    queries_per_second: float  # labelled / wall_seconds
    prompt_tokens_per_query: float
    completion_tokens_per_query: float  # all K samples of a query together
    config: dict = field(default_factory=dict)
    fingerprint: str = ""
    output_sha256: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> GenerateSummary:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def __str__(self) -> str:
        labels = " ".join(f"{k}={v}" for k, v in self.labels.items() if v) or "none"
        n_rejects = sum(self.rejects.values())
        rejects = ", ".join(f"{k} {v}" for k, v in self.rejects.items() if v) or "none"
        return "\n".join([
            f"{self.rows} rows -> {self.out} (teacher {self.teacher})",
            f"queries: {self.queries} read, {self.distinct} distinct, {self.duplicates} duplicates, "
            f"{self.empty} empty; {self.resumed} resumed from an earlier run",
            f"labels: {labels}",
            f"rejects: {n_rejects} ({rejects})" + (f", see {self.out}.rejects.jsonl" if n_rejects else ""),
            f"{self.labelled} labelled in {self.wall_seconds:.1f} s ({self.queries_per_second:.1f} queries/s), "
            f"{self.retries} retries",
            f"tokens per query: {self.prompt_tokens_per_query:.0f} prompt, {self.completion_tokens_per_query:.1f} completion",
        ])


# --------------------------------------------------------------------------- teacher wrappers


async def resolve(value):
    """The result of whatever ``sample`` returned: an awaitable, a concurrent future,
    an object with a blocking ``.result()``, or the response itself."""
    if inspect.isawaitable(value):
        return await value
    if isinstance(value, concurrent.futures.Future):
        return await asyncio.wrap_future(value)
    if hasattr(value, "result") and callable(value.result):
        return await asyncio.to_thread(value.result)
    return value


class _Call:
    """A pending call: ``await`` it, or ``.result()`` it outside a running event loop."""

    def __init__(self, make):
        self._make = make

    def __await__(self):
        return self._make().__await__()

    def result(self, timeout: float | None = None):
        return asyncio.run(asyncio.wait_for(self._make(), timeout))


class _Wrapper:
    """Forwards everything but ``sample`` to the wrapped sampling client."""

    def __init__(self, teacher):
        self.teacher = teacher

    def get_tokenizer(self):
        return self.teacher.get_tokenizer()

    def get_base_model(self) -> str:
        return self.teacher.get_base_model()

    def __getattr__(self, name):
        if name == "teacher":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.teacher, name)


class LatencyTeacher(_Wrapper):
    """A sampling client that answers like ``teacher`` but ``delay`` seconds later (for benchmarks).

    The delay is an ``asyncio.sleep``, so concurrent requests overlap as they do on a server:
    ``generate(LatencyTeacher(teacher, 0.2), queries, out)`` at concurrency 32 should take
    about ``len(queries) * 0.2 / 32`` seconds.
    """

    def __init__(self, teacher, delay: float = 0.2):
        super().__init__(teacher)
        self.delay = delay
        self.calls = 0

    def sample(self, prompt, num_samples, sampling_params, **kwargs):
        self.calls += 1

        async def run():
            await asyncio.sleep(self.delay)
            return await resolve(self.teacher.sample(prompt, num_samples, sampling_params, **kwargs))

        return _Call(run)


class FlakyTeacher(_Wrapper):
    """A sampling client that fails a fraction of calls (fault injection for tests and drills).

    Which calls fail is a function of ``seed``, the prompt and how many times that prompt
    was asked before, so it does not depend on the order concurrent requests run in.

    Parameters
    ----------
    teacher : the sampling client to wrap.
    failure_rate : share of calls that fail, in [0, 1].
    permanent : False raises :class:`TransientError` (retried, and a retry may succeed);
        True raises ``RuntimeError`` on every call for the chosen prompts (never retried).
    seed : chooses which calls fail.

    Attributes ``calls`` and ``failures`` count what happened.
    """

    def __init__(self, teacher, failure_rate: float = 0.3, permanent: bool = False, seed: int = 0):
        super().__init__(teacher)
        if not 0 <= failure_rate <= 1:
            raise ValueError(f"failure_rate must be in [0, 1], got {failure_rate}")
        self.failure_rate = failure_rate
        self.permanent = permanent
        self.seed = seed
        self.calls = 0
        self.failures = 0
        self._asked: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _fails(self, prompt) -> bool:
        digest = hashlib.sha256(json.dumps(list(prompt.to_ints())).encode()).hexdigest()
        with self._lock:
            self.calls += 1
            attempt = 0 if self.permanent else self._asked[digest]
            self._asked[digest] += 1
        draw = hashlib.sha256(f"{self.seed}:{digest}:{attempt}".encode()).digest()
        fails = int.from_bytes(draw[:8], "big") / 2**64 < self.failure_rate
        if fails:
            with self._lock:
                self.failures += 1
        return fails

    def sample(self, prompt, num_samples, sampling_params, **kwargs):
        if not self._fails(prompt):
            return self.teacher.sample(prompt, num_samples, sampling_params, **kwargs)
        if self.permanent:
            error: Exception = RuntimeError("injected permanent failure (FlakyTeacher)")
        else:
            error = TransientError("injected transient failure (FlakyTeacher)")

        async def fail():
            raise error

        return _Call(fail)


# --------------------------------------------------------------------------- the run


def journal_path(out_path: str | os.PathLike) -> Path:
    """The journal :func:`generate` keeps beside ``out_path``: while it runs, after a run whose
    requests failed, or while it holds another run's answers."""
    out = Path(out_path)
    return out.with_name(out.name + ".partial")


def _paths(out: Path) -> dict[str, Path]:
    return {"journal": journal_path(out),
            "rejects": out.with_name(out.name + ".rejects.jsonl"),
            "summary": out.with_name(out.name + ".summary.json")}


def _query_texts(queries: Sequence) -> list[str]:
    texts = text_list(queries, "queries")
    if not texts:
        raise DataError("queries: no queries (empty list)")
    return texts


def _sha(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def _query_seed(seed: int, text: str) -> int:
    return int(_sha("seed", str(seed), text)[:8], 16) & 0x7FFFFFFF


def _repeats_seeded_samples(teacher) -> bool:
    """Whether ``teacher`` is a Tinker SDK sampling client, whose server answers a seeded request
    for several samples with copies of one another (thinking-machines-lab/tinker-feedback#79,
    open since 2026-02: with a seed, many of 32 sequences are token-identical; without, all
    differ). K votes there would all agree, confidence would read 1.0 and ``min_agreement``
    would drop nothing. So on Tinker K votes are asked without a seed: real votes, drawn anew
    on each run (the journal keeps them for a resumed one). The local backend keeps the seed."""
    try:
        import tinker
    except ImportError:
        return False
    return isinstance(teacher, tinker.SamplingClient)


def _winner(votes: dict[str, int]) -> str:
    return max(votes, key=lambda label: (votes[label], -LABELS.index(label)))


def _ordered_votes(votes: dict[str, int]) -> dict[str, int]:
    return dict(sorted(votes.items(), key=lambda kv: (-kv[1], LABELS.index(kv[0]))))


def _read_journal(path: Path) -> tuple[dict[str, dict], int]:
    """Entries by key (a later line for a key wins) and the byte length of the complete lines."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}, 0
    end = data.rfind(b"\n") + 1  # anything after the last newline is a line torn by a kill
    entries: dict[str, dict] = {}
    for line in data[:end].splitlines():
        try:
            entry = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # cannot happen for lines this module wrote; the query is simply asked again
        if isinstance(entry, dict) and isinstance(entry.get("key"), str) and entry.get("status") in ("ok", "unparsed", "error"):
            entries[entry["key"]] = entry
    return entries, end


class _Journal:
    """``<out>.partial``, opened for appending, locked against a second writer."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # Windows: no advisory locks, no protection against two writers
            pass
        except OSError:
            os.close(self.fd)
            raise DataError(f"{path}: another generate run is writing this output right now") from None

    def load(self) -> dict[str, dict]:
        entries, end = _read_journal(self.path)
        os.ftruncate(self.fd, end)  # drop a torn last line before appending after it
        return entries

    def append(self, entry: dict) -> None:
        data = (dumps(entry) + "\n").encode("utf-8")
        while data:  # one write() per line in practice; loop in case the OS writes less
            data = data[os.write(self.fd, data):]

    def close(self, remove: bool = False) -> None:
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)


def _finished(out: Path, summary_path: Path, fingerprint: str) -> tuple[dict | None, str]:
    """(saved summary, "") when ``out`` is this command's finished output, else (None, why not)."""
    try:
        saved = json.loads(summary_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"no {summary_path.name} beside it, so it was not written by generate"
    except (OSError, ValueError):
        return None, f"{summary_path.name} beside it cannot be read"
    if not isinstance(saved, dict) or saved.get("fingerprint") != fingerprint:
        return None, "it was generated with another teacher, prompt, settings or query list"
    if hashlib.sha256(out.read_bytes()).hexdigest() != saved.get("output_sha256"):
        return None, "it was changed after generate wrote it"
    return saved, ""


class _Run:
    """One generation run: the state shared by the request tasks."""

    def __init__(self, teacher, tokenizer, prompt: str, config: GenerateConfig, teacher_name: str,
                 max_context: int | None = None):
        self.teacher = teacher
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.config = config
        self.teacher_name = teacher_name
        self.max_context = max_context
        self.jitter = random.Random()
        self.seeded = config.num_samples == 1 or not _repeats_seeded_samples(teacher)

    async def ask(self, key: str, text: str, slots: asyncio.Semaphore) -> dict:
        """One query's journal entry: votes and the first raw answer for the winning label (the
        first answer when none parses), or why there are none.

        The prompt is rendered before taking one of the ``slots`` (requests in flight), so a
        slot that frees up is refilled at once with a query rendered while it was busy.
        """
        cfg = self.config
        entry: dict[str, Any] = {"key": key, "query": text}
        retries = 0
        try:
            prompt = model_input(self.tokenizer, teacher_messages(text, self.prompt))
            params = sampling_params(self.tokenizer, cfg.max_tokens, cfg.temperature, top_p=cfg.top_p,
                                     seed=_query_seed(cfg.seed, text) if self.seeded else None)
            if self.max_context and prompt.length + cfg.max_tokens > self.max_context:  # refused if sent
                raise ValueError(f"not asked: {prompt.length} tokens of prompt and query and up to {cfg.max_tokens} "
                                 f"for the answer do not fit {self.teacher_name}'s context of {self.max_context}")
            async with slots:
                while True:
                    try:
                        response = await resolve(self.teacher.sample(prompt, cfg.num_samples, params))
                        break
                    except Exception as e:
                        if not is_transient(e) or retries >= cfg.max_retries:
                            raise
                        retries += 1  # the slot is kept while waiting: backing off means fewer requests
                        await asyncio.sleep(backoff(retries - 1, cfg.backoff_base, cfg.backoff_max, self.jitter))
            answers = [decode_answer(self.tokenizer, s.tokens) for s in response.sequences]
            if not answers:
                raise ValueError("the teacher returned no sequences")
        except Exception as e:  # anything but cancellation: this query fails, the run goes on
            exhausted = is_transient(e) and retries >= cfg.max_retries
            entry.update(status="error", reason="retries_exhausted" if exhausted else "error", error=one_line(e),
                         retries=retries)
            return entry
        labels = [parse_answer(answer) for answer in answers]
        votes = Counter(label for label in labels if label is not None)
        raw = answers[labels.index(_winner(votes))] if votes else answers[0]  # it argues for the row's label
        entry.update(status="ok" if votes else "unparsed", raw=raw, votes=_ordered_votes(votes), n=len(answers),
                     retries=retries, prompt_tokens=prompt.length,
                     completion_tokens=sum(len(s.tokens) for s in response.sequences))
        return entry


def _outcome(entry: dict, min_agreement: float) -> tuple[str | None, dict | None]:
    """(label, None) for a row, or (None, reject) for a query without one."""
    if entry["status"] == "error":
        return None, {"query": entry["query"], "reason": entry["reason"], "raw": None, "error": entry["error"]}
    if entry["status"] == "unparsed":
        return None, {"query": entry["query"], "reason": "unparsed", "raw": entry["raw"]}
    label = _winner(entry["votes"])
    if entry["votes"][label] / entry["n"] < min_agreement:
        return None, {"query": entry["query"], "reason": "low_agreement", "raw": entry["raw"], "votes": entry["votes"]}
    return label, None


def _results(plan: _Plan, done: dict[str, dict]) -> tuple[list[dict], list[dict], dict[str, int], dict[str, int]]:
    """A run's rows and rejects, in the queries' order, from the entries of every one of its keys;
    and how many rows each label has and how many rejects each reason."""
    rows, rejects = [], []
    labels = dict.fromkeys(LABELS, 0)
    reasons = dict.fromkeys(REJECT_REASONS, 0)
    for key, text in zip(plan.keys, plan.distinct, strict=True):
        entry = {**done[key], "query": text}
        label, reject = _outcome(entry, plan.config.min_agreement)
        if reject is not None:
            rejects.append(reject)
            reasons[reject["reason"]] += 1
            continue
        labels[label] += 1
        share = entry["votes"][label] / entry["n"]
        rows.append({"messages": conversation(text, label),
                     "teacher": {"model": plan.name, "raw": entry["raw"], "votes": entry["votes"],
                                 "confidence": round(share, 4)}})
    return rows, rejects, labels, reasons


def _rows_sha256(rows: list[dict]) -> str:
    """The hash of ``rows`` written as :func:`write_jsonl` writes them: the summary's ``output_sha256``."""
    return hashlib.sha256("".join(dumps(r) + "\n" for r in rows).encode("utf-8")).hexdigest()


async def generate_async(
    teacher,
    queries: Sequence[str | dict],
    out_path: str | os.PathLike,
    prompt: str = DEFAULT_PROMPT,
    config: GenerateConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
    teacher_name: str | None = None,
    max_context: int | None = None,
) -> GenerateSummary:
    """Label ``queries`` with ``teacher`` reading ``prompt``; write the student's data to ``out_path``.

    Parameters
    ----------
    teacher : a sampling client (``tinker.SamplingClient``, the local one, or a wrapper)
        whose ``sample(prompt, num_samples, sampling_params)`` returns a future.
    queries : strings, or objects with a ``"text"`` (as :func:`helpers.dataio.read_queries` gives).
    out_path : the JSONL file to write; ``<out>.partial`` (the journal: while running, and kept
        after a run whose requests failed or when it holds another run's answers),
        ``<out>.rejects.jsonl`` and ``<out>.summary.json`` go beside it.
    prompt : the teacher's system prompt.
    config : :class:`GenerateConfig`; defaults to ``GenerateConfig()``.
    overwrite : replace an ``out_path`` that is not this command's finished output
        for the same teacher, prompt, settings and queries (one that is, is reused all the same).
    progress : show a progress bar.
    teacher_name : the model name recorded in keys and rows (default: see :func:`teacher_model_name`).
    max_context : the teacher's context in tokens (:func:`helpers.backend.context_length` asks a
        Tinker server); default the client's own ``max_context`` (the local clients have one). A
        query whose request would not fit is not sent: it is rejected as ``error``, saying why.

    Returns
    -------
    GenerateSummary
        Also written to ``<out>.summary.json``. When ``out_path`` already holds this
        command's finished output, its saved summary is returned and nothing is asked;
        if some of its requests failed (rejects ``error``, ``retries_exhausted``), only
        those queries are asked again.

    Raises
    ------
    DataError
        Bad settings or queries, or an existing output that may not be replaced.
    """
    started = time.monotonic()
    plan = _plan(teacher, queries, prompt, config, teacher_name)
    config, name, texts, empty, distinct, keys, fingerprint = plan
    out = check_writable(out_path)
    paths = _paths(out)

    saved = _reusable(out, paths, plan, overwrite)
    if saved is not None:
        if paths["journal"].exists() and not set(_answered(_read_journal(paths["journal"])[0])) - set(keys):
            paths["journal"].unlink(missing_ok=True)  # left over if a run died after its last write
        return GenerateSummary.from_dict(saved)

    journal = _Journal(paths["journal"])
    finished = False
    others = False  # the journal holds answers of another run (other queries or settings): kept for it
    try:
        entries = _answered(journal.load())
        others = bool(set(entries) - set(keys))
        done = {k: entries[k] for k in keys if k in entries}
        resumed = len(done)
        todo = [(k, t) for k, t in zip(keys, distinct, strict=True) if k not in done]
        tokenizer = teacher.get_tokenizer()
        context = max_context if max_context is not None else getattr(teacher, "max_context", None)
        run = _Run(teacher, tokenizer, prompt, config, name, context)
        await _ask_all(run, todo, done, journal, len(keys), resumed, progress)

        rows, rejects, labels, reasons = _results(plan, done)
        answered = [e for e in done.values() if e["status"] != "error"]
        wall = time.monotonic() - started
        labelled = len(keys) - resumed
        summary = GenerateSummary(
            out=str(out), teacher=name, rows=len(rows), labels=labels, rejects=reasons, queries=len(texts),
            distinct=len(distinct), duplicates=len(texts) - empty - len(distinct), empty=empty,
            labelled=labelled, resumed=resumed, retries=sum(e.get("retries", 0) for e in done.values()),
            wall_seconds=round(wall, 3), queries_per_second=round(labelled / wall, 2) if wall > 0 else 0.0,
            prompt_tokens_per_query=round(sum(e["prompt_tokens"] for e in answered) / max(len(answered), 1), 1),
            completion_tokens_per_query=round(sum(e["completion_tokens"] for e in answered) / max(len(answered), 1), 1),
            config=asdict(config), fingerprint=fingerprint, output_sha256=_rows_sha256(rows),
        )
        # Order matters for a kill between writes: <out> goes before the summary that vouches for it
        # by its hash, and the journal is removed last. Stopped between the two, the run leaves an
        # <out> that is exactly what it makes of its journal, and the next run finishes the work
        # (_made_from_journal). The summary first left a re-run's new hash beside the <out> it had
        # not yet replaced, which then looked edited by hand.
        write_jsonl(paths["rejects"], rejects)
        write_jsonl(out, rows)
        write_text(paths["summary"], json.dumps(asdict(summary), indent=1, ensure_ascii=False) + "\n")
        finished = True
        return summary
    finally:
        journal.close(remove=finished and _failures(reasons) == 0 and not others)


def failed_requests(teacher, queries: Sequence[str | dict], out_path: str | os.PathLike, prompt: str = DEFAULT_PROMPT,
                    config: GenerateConfig | None = None, teacher_name: str | None = None) -> int:
    """How many queries of the finished output ``out_path`` of :func:`generate` with these
    arguments failed (rejects ``error`` and ``retries_exhausted``) and would be asked again by
    running it once more, asking nothing; 0 when ``out_path`` is missing, is another run's
    output, or has no journal left to resume from."""
    if not journal_path(out_path).exists():
        return 0
    summary = finished_summary(teacher, queries, out_path, prompt, config, teacher_name)
    return _failures(summary.rejects) if summary is not None else 0


def finished_summary(teacher, queries: Sequence[str | dict], out_path: str | os.PathLike, prompt: str = DEFAULT_PROMPT,
                     config: GenerateConfig | None = None, teacher_name: str | None = None) -> GenerateSummary | None:
    """The summary of ``out_path`` when it is the finished output of :func:`generate` with these
    arguments (failed requests and all, which :func:`generate` would ask again), else None.
    Asks nothing: for data that must not change once something was trained on it."""
    out = Path(out_path)
    if not out.exists():
        return None
    plan = _plan(teacher, queries, prompt, config, teacher_name)
    saved, _ = _finished(out, _paths(out)["summary"], plan.fingerprint)
    return GenerateSummary.from_dict(saved) if saved is not None else None


def _reusable(out: Path, paths: dict[str, Path], plan: _Plan, overwrite: bool) -> dict | None:
    """The saved summary when ``out`` is this run's finished output with nothing to ask again.

    None when the run has work to do: there is no ``out`` yet, ``out`` is someone else's
    and ``overwrite`` is set, some requests of the finished run failed (its journal is
    kept, and running it again asks those queries only), or the run was stopped after
    writing ``out`` and before its summary (:func:`_made_from_journal`). ``DataError`` when
    ``out`` is someone else's and may not be replaced.
    """
    if not out.exists():
        return None
    saved, why = _finished(out, paths["summary"], plan.fingerprint)
    if saved is None:
        if not overwrite and not _made_from_journal(out, paths["journal"], plan):
            raise DataError(f"{out}: exists and {why}; pass overwrite=True (--overwrite) to replace it")
        return None
    retry_failed = _failures(saved.get("rejects", {})) > 0 and paths["journal"].exists()
    return None if retry_failed else saved


def _made_from_journal(out: Path, journal: Path, plan: _Plan) -> bool:
    """Whether ``out`` holds exactly the rows that ``plan``'s run makes of the answers in
    ``journal``: that run wrote it and was stopped before the summary that vouches for it.
    A file edited by hand, or another run's, is not."""
    entries, _ = _read_journal(journal)
    if not all(key in entries for key in plan.keys):
        return False
    return hashlib.sha256(out.read_bytes()).hexdigest() == _rows_sha256(_results(plan, entries)[0])


class _Plan(NamedTuple):
    config: GenerateConfig
    name: str  # the teacher's name, part of every key
    texts: list[str]  # the queries as given
    empty: int
    distinct: list[str]  # the distinct non-empty queries, in order
    keys: list[str]  # their journal keys
    fingerprint: str  # the whole run's


def _plan(teacher, queries, prompt: str, config: GenerateConfig | None, teacher_name: str | None) -> _Plan:
    """What a run of :func:`generate` (or :func:`estimate`) with these arguments asks: settings
    checked, queries read, keys made. ``DataError`` for a bad setting or query list."""
    config = config or GenerateConfig()
    if not isinstance(config, GenerateConfig):
        raise DataError(f"setting: config must be a GenerateConfig, e.g. GenerateConfig(concurrency=4); got a {type(config).__name__}")
    config.validate()
    if not (callable(getattr(teacher, "sample", None)) and callable(getattr(teacher, "get_tokenizer", None))):
        raise DataError(f"setting: the teacher must be a sampling client, e.g. service.create_sampling_client("
                        f"base_model=...); got a {type(teacher).__name__}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError("setting: the teacher prompt is empty")
    texts = _query_texts(queries)
    name = teacher_model_name(teacher, teacher_name, config)
    empty = sum(1 for t in texts if not t.strip())
    distinct = list(dict.fromkeys(t for t in texts if t.strip()))
    if not distinct:
        raise DataError(f"queries: all {len(texts)} queries are empty")
    settings = _sha(json.dumps([FORMAT_VERSION, name, prompt, config.sampling()], sort_keys=True))
    keys = [_sha(settings, t)[:32] for t in distinct]
    fingerprint = _sha(settings, json.dumps(float(config.min_agreement)), *keys)
    return _Plan(config, name, texts, empty, distinct, keys, fingerprint)


def _answered(entries: dict[str, dict]) -> dict[str, dict]:
    """The journal's answered queries; a failed request is asked again."""
    return {key: entry for key, entry in entries.items() if entry["status"] != "error"}


def _failures(rejects: dict) -> int:
    """Queries whose requests failed (not those the teacher answered badly): worth asking again."""
    return int(rejects.get("error", 0)) + int(rejects.get("retries_exhausted", 0))


async def _ask_all(run: _Run, todo, done: dict, journal: _Journal, total: int, resumed: int, progress: bool) -> None:
    """Ask for every ``(key, text)`` in ``todo``, at most ``concurrency`` at a time, journaling each answer.

    Two semaphores: ``slots`` bounds the requests in flight; ``window`` bounds the tasks alive
    (in flight, or rendered and waiting for a slot) to twice that, so memory stays flat for
    any number of queries and rendering runs ahead of the requests.
    """
    from tqdm.auto import tqdm

    slots = asyncio.Semaphore(run.config.concurrency)
    window = asyncio.Semaphore(2 * run.config.concurrency)
    tasks: set[asyncio.Task] = set()
    failed: list[BaseException] = []
    counts = Counter()
    bar = tqdm(total=total, initial=resumed, unit="query", desc="teacher", disable=not progress, dynamic_ncols=True,
               smoothing=0)  # the average rate since the start, as the summary line gives it
    watch = StallWatch("teacher", lambda: f"the {len(done)} answers so far are kept")

    async def one(key: str, text: str) -> None:
        try:
            entry = await run.ask(key, text, slots)
            watch.tick()
            journal.append(entry)
            done[key] = entry
            counts["retries"] += entry.get("retries", 0)
            counts[entry["status"]] += 1
            bar.set_postfix(retries=counts["retries"], unparsed=counts["unparsed"], errors=counts["error"], refresh=False)
            bar.update(1)
        except Exception as e:  # journal write failed (disk full, ...): stop the run
            failed.append(e)
        finally:
            window.release()

    async def wake_regularly() -> None:
        # Python runs a signal's handler between bytecodes of the main thread: a Ctrl-C that lands
        # just before the loop goes to sleep, or in another thread, waits for the loop's next event,
        # and with every request stalled there is none. Waking five times a second bounds that wait.
        while True:
            await asyncio.sleep(0.2)

    heartbeat = asyncio.create_task(wake_regularly())
    try:
        with watch:
            for key, text in todo:
                await window.acquire()
                if failed:
                    window.release()
                    break
                task = asyncio.create_task(one(key, text))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.gather(*list(tasks))
    except BaseException as e:  # Ctrl-C or cancellation: stop what is in flight; the journal keeps the rest
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if isinstance(e, KeyboardInterrupt | asyncio.CancelledError):  # shown under the traceback
            answered = sum(entry["status"] != "error" for entry in done.values())
            e.add_note(f"generation interrupted: {answered:,} answers are kept in {journal.path.name}; "
                       "the same call again asks only the others")
        raise
    finally:
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
        bar.close()
    if failed:
        raise failed[0]


def generate(
    teacher,
    queries: Sequence[str | dict],
    out_path: str | os.PathLike,
    prompt: str = DEFAULT_PROMPT,
    config: GenerateConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
    teacher_name: str | None = None,
    max_context: int | None = None,
) -> GenerateSummary:
    """:func:`generate_async` for synchronous code, Jupyter cells included.

    Without a running event loop this is ``asyncio.run``; inside one (a notebook cell)
    the run gets its own loop in a worker thread, and an interrupt (Ctrl-C, the
    notebook's stop button) cancels it, leaving the journal to resume from.
    """
    coro = generate_async(teacher, queries, out_path, prompt, config, overwrite, progress, teacher_name, max_context)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        try:
            return asyncio.run(coro)
        except KeyboardInterrupt as interrupt:  # asyncio raises a new one, after cancelling the run
            _add_notes(interrupt, interrupt.__context__)
            raise
    return _run_in_thread(coro)


def _add_notes(error: BaseException, source: BaseException | None) -> None:
    """Give ``error`` the notes it lacks of ``source`` and the errors it arose in: what a
    cancelled run said it keeps (asyncio re-raises a cancellation as a new error)."""
    seen = set()
    while source is not None and id(source) not in seen:
        seen.add(id(source))
        for note in getattr(source, "__notes__", ()):
            if note not in getattr(error, "__notes__", ()):
                error.add_note(note)
        source = source.__context__


@dataclass(frozen=True)
class GenerateEstimate:
    """What :func:`generate` with the same arguments would ask of the teacher, counted before asking.

    On Tinker these are what a generation run is billed for: prompt tokens read and tokens
    sampled (look up your model's prices per million tokens). ``prompt_tokens`` is exact,
    counted with the teacher's tokenizer on the very prompts :func:`generate` sends;
    ``max_sampled_tokens`` is the most the answers can take (a bare label takes a few).
    """

    teacher: str
    distinct: int  # distinct non-empty queries
    answered: int  # of those, already answered: a finished output, or an interrupted run's journal
    requests: int  # left to ask, one request each (``num_samples`` answers per request)
    prompt_tokens: int  # of those requests together
    max_sampled_tokens: int  # requests * num_samples * max_tokens

    def __str__(self) -> str:
        per = f" ({self.prompt_tokens / self.requests:,.0f} per request)" if self.requests else ""
        return (f"{self.requests:,} requests to {self.teacher} ({self.answered:,} of {self.distinct:,} distinct queries "
                f"already answered): {self.prompt_tokens:,} prompt tokens{per}, "
                f"at most {self.max_sampled_tokens:,} sampled tokens")


def estimate(
    teacher,
    queries: Sequence[str | dict],
    out_path: str | os.PathLike | None = None,
    prompt: str = DEFAULT_PROMPT,
    config: GenerateConfig | None = None,
    overwrite: bool = False,
    teacher_name: str | None = None,
) -> GenerateEstimate:
    """Count what :func:`generate` would ask with these arguments, sampling nothing (``teacher``
    is only asked for its tokenizer, which on Tinker needs the session the client opened).

    With ``out_path``, queries already answered there (a finished output, or the journal
    of an interrupted run) are left out, as :func:`generate` would skip them; an
    ``out_path`` that :func:`generate` would refuse to replace raises the same
    ``DataError`` here, before anything is paid for. The teacher's tokenizer is the only
    thing asked of ``teacher``.

    >>> from helpers import connect
    >>> teacher = connect("local").create_sampling_client(base_model="local/policy-teacher").result()
    >>> e = estimate(teacher, ["Guten Morgen, wie geht es dir heute?", "Bonjour à tous !", "  "])
    >>> e.requests, e.max_sampled_tokens, e.prompt_tokens > 2 * 3000
    (2, 512, True)
    """
    plan = _plan(teacher, queries, prompt, config, teacher_name)
    answered: set[str] | dict[str, dict] = set()
    if out_path is not None:
        out = Path(out_path)
        paths = _paths(out)
        if _reusable(out, paths, plan, overwrite) is not None:
            answered = set(plan.keys)
        else:
            answered = _answered(_read_journal(paths["journal"])[0])
    tokenizer = teacher.get_tokenizer()
    todo = [text for key, text in zip(plan.keys, plan.distinct, strict=True) if key not in answered]
    tokens = sum(len(prompt_tokens(tokenizer, teacher_messages(text, prompt))) for text in todo)
    return GenerateEstimate(teacher=plan.name, distinct=len(plan.distinct), answered=len(plan.distinct) - len(todo),
                            requests=len(todo), prompt_tokens=tokens,
                            max_sampled_tokens=len(todo) * plan.config.num_samples * plan.config.max_tokens)


def _run_in_thread(coro):
    box: dict[str, Any] = {}
    ready = threading.Event()
    finished = threading.Event()  # not thread.join(): in Python 3.11 a join interrupted by Ctrl-C
    # can mark a live thread as stopped, so that the next join returns at once (bpo-45274's fix)

    def target() -> None:
        loop = asyncio.new_event_loop()
        try:
            box["task"] = loop.create_task(coro)
            box["loop"] = loop
            ready.set()
            box["result"] = loop.run_until_complete(box["task"])
        except BaseException as e:
            box["error"] = e
        finally:
            ready.set()
            try:
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
                finished.set()

    thread = threading.Thread(target=target, name="helpers.generate", daemon=True)
    thread.start()
    try:
        while not finished.wait(0.1):
            pass
    except KeyboardInterrupt as interrupt:
        ready.wait()
        if "task" in box and not box["task"].done():
            box["loop"].call_soon_threadsafe(box["task"].cancel)
        finished.wait()  # the run has stopped and closed its journal: a cell run again may open it
        _add_notes(interrupt, box.get("error"))  # what the cancelled run kept
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m helpers generate``."""
    d = GenerateConfig()
    parser.add_argument("--queries", required=True, help="query file, JSONL with \"text\" per line")
    parser.add_argument("--out", required=True, help="distillation data to write (JSONL, chat format)")
    parser.add_argument("--backend", choices=("local", "tinker"), default=None,
                        help="default: PD_BACKEND if set, else Tinker when TINKER_API_KEY is set, else local")
    parser.add_argument("--teacher", default=None,
                        help=f"teacher model or checkpoint path (default: {LOCAL_TEACHER} offline, {TINKER_TEACHER} on Tinker)")
    parser.add_argument("--prompt-file", default=None, help="teacher prompt as a text file (default: the course prompt)")
    parser.add_argument("--temperature", type=float, default=d.temperature)
    parser.add_argument("--samples", type=int, default=d.num_samples,
                        help="answers per query, majority vote (needs --temperature > 0)")
    parser.add_argument("--min-agreement", type=float, default=d.min_agreement,
                        help="drop rows whose winning vote share is below this")
    parser.add_argument("--concurrency", type=int, default=d.concurrency, help="requests in flight")
    parser.add_argument("--max-tokens", type=int, default=d.max_tokens)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output that is not this run's own")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--estimate", action="store_true",
                        help="sample nothing: print the requests and prompt tokens this run would send, then stop "
                             "(on Tinker it opens a session only to read the teacher's tokenizer)")


def read_prompt(path: str | os.PathLike) -> str:
    """A teacher prompt from a UTF-8 text file; ``DataError`` when missing or empty."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a text file") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: invalid UTF-8 at byte {e.start}") from None
    if not text.strip():
        raise DataError(f"{path}: the prompt file is empty")
    return text


def check_room(teacher, prompt: str, max_tokens: int, model: str, context: int | None) -> None:
    """Raise ``DataError`` when the prompt and ``max_tokens`` cannot fit the teacher's
    ``context`` (tokens; None: not known) even for an empty query: every request would be
    refused, so none is sent."""
    if not context:
        return
    fixed = len(prompt_tokens(teacher.get_tokenizer(), teacher_messages("", prompt)))
    if fixed >= context:
        raise DataError(f"setting: prompt: it takes {fixed:,} tokens before any query, more than {model}'s context "
                        f"of {context:,}: use a shorter prompt or a model with a longer context")
    if fixed + max_tokens > context:
        raise DataError(f"setting: max_tokens: {max_tokens:,} tokens for the answer and the prompt's {fixed:,} "
                        f"do not fit {model}'s context of {context:,}; at most {context - fixed - 1:,} leaves room "
                        f"for a one-token query")


def main(args: argparse.Namespace) -> int:
    """Run ``python -m helpers generate``: label the queries, print the summary.

    Returns 0, or 1 when no row could be written. Bad input raises ``DataError``.
    """
    from .backend import check_model, connect, context_length

    config = GenerateConfig(teacher_model=args.teacher, temperature=args.temperature, num_samples=args.samples,
                            min_agreement=args.min_agreement, concurrency=args.concurrency,
                            max_tokens=args.max_tokens, seed=args.seed)
    config.validate()
    prompt = read_prompt(args.prompt_file) if args.prompt_file else DEFAULT_PROMPT
    queries = read_queries(args.queries, allow_empty_text=True)
    if not any(q["text"].strip() for q in queries):  # generate() would say "queries", not which file
        raise DataError(f"{args.queries}: all {len(queries)} queries are empty")
    if not args.estimate:  # an estimate writes nothing, not even the output's folder
        check_writable(args.out)
    service = connect(args.backend)
    model = args.teacher or default_teacher(service)
    if "://" in model:  # a checkpoint: tinker://... or local://...
        teacher = service.create_sampling_client(model_path=model).result()
    else:
        teacher = service.create_sampling_client(base_model=check_model(service, model, use="sample")).result()
    if args.estimate:
        print(estimate(teacher, queries, args.out, prompt, config, overwrite=args.overwrite, teacher_name=model))
        return 0
    context = getattr(teacher, "max_context", None) or (None if "://" in model else context_length(service, model))
    check_room(teacher, prompt, config.max_tokens, model, context)
    summary = generate(teacher, queries, args.out, prompt, config, overwrite=args.overwrite,
                       progress=not args.no_progress, teacher_name=model, max_context=context)
    print(summary)
    if summary.rows == 0:
        first = next((row for _, row in iter_jsonl(f"{args.out}.rejects.jsonl")), {})
        why = " ".join(str(first.get("error") or first.get("reason", "?")).split())
        print(f"generate: no rows written; every query was rejected, the first with: {why} "
              f"(all in {args.out}.rejects.jsonl)", file=sys.stderr)
        return 1
    return 0
