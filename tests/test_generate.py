"""Tests for helpers.generate: resume after SIGKILL, fault injection, voting, overwrite rules.

Two teachers are used. The offline stand-in (``local/policy-teacher``) runs the
full path once the lingua models are loaded (a one-off ~20 s in this process).
``ScriptedTeacher`` is this file's fake: it answers each query from a script,
instantly, through the real tokenizer and real ``tinker.types`` responses; the
subprocess tests use it so that each process starts in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from tinker import types

from helpers.dataio import DataError, read_conversations, read_queries
from helpers.labels import LABELS, parse_answer
from helpers.prompt import DEFAULT_PROMPT, SHORT_PROMPT
from helpers.teacher import read_conversation

from helpers.generate import (  # isort: skip
    FlakyTeacher, GenerateConfig, GenerateSummary, LatencyTeacher, TransientError, add_arguments,
    default_teacher, estimate, generate, generate_async, is_transient, main,
)

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [q["text"] for q in read_queries(ROOT / "data" / "queries.jsonl")]
FAST = dict(backoff_base=0.001, backoff_max=0.01)  # retries without the waiting


def sidecars(out: Path) -> dict[str, Path]:
    return {s: out.with_name(out.name + s) for s in (".partial", ".rejects.jsonl", ".summary.json")}


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- test teachers


class ScriptedTeacher:
    """A fake teacher: ``answers(query, k, params)`` gives the K raw answers for a query.

    It reads the query out of the rendered prompt like a model would, records every
    call, and returns ``tinker.types.SampleResponse`` objects in a done
    ``concurrent.futures.Future``.
    """

    def __init__(self, answers, name: str = "test/scripted"):
        from helpers.local.model import load_tokenizer

        self.answers = answers
        self.name = name
        self.tokenizer = load_tokenizer()
        self.calls: list[tuple[str, str, int, types.SamplingParams]] = []

    def get_tokenizer(self):
        return self.tokenizer

    def get_base_model(self) -> str:
        return self.name

    def sample(self, prompt, num_samples, sampling_params):
        system, query = read_conversation(self.tokenizer.decode(prompt.to_ints()))
        self.calls.append((system, query, num_samples, sampling_params))
        sequences = []
        for text in self.answers(query, num_samples, sampling_params):
            ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]
            sequences.append(types.SampledSequence(stop_reason="stop", sequence_id=uuid.uuid4().hex,
                                                   tokens_np=np.asarray(ids, np.int32)))
        future = concurrent.futures.Future()
        future.set_result(types.SampleResponse(sequences=sequences))
        return future


def seeded_answers(query: str, k: int, params: types.SamplingParams) -> list[str]:
    """Answers drawn from the request's seed: a mix of clear, split and unparseable votes.

    About one query in seven gets no parseable answer at all, so that every run over a few
    dozen pool queries has unparsed rejects whatever the pool holds (with uniform draws a
    fully unparseable query was a 1-in-64 event, and some pools had none among 60).
    """
    rng = random.Random(params.seed)
    if rng.random() < 0.15:
        return ["no idea"] * k
    return [rng.choice(["Final Answer: de", "Final Answer: fr", "en", "no idea"]) for _ in range(k)]


RESUME_QUERIES = TEXTS[:60] + TEXTS[:5] + ["   "]
RESUME_CONFIG = GenerateConfig(temperature=1.0, num_samples=3, min_agreement=0.5, concurrency=4)


def resume_case(out: str, delay: float) -> GenerateSummary:
    """The run the resume test kills and restarts (also called in the subprocesses)."""
    teacher = LatencyTeacher(ScriptedTeacher(seeded_answers), delay=delay)
    return generate(teacher, RESUME_QUERIES, out, config=RESUME_CONFIG, progress=False)


@pytest.fixture(scope="module")
def standin():
    from helpers import connect

    service = connect("local")
    assert default_teacher(service) == "local/policy-teacher"
    return service.create_sampling_client(base_model=default_teacher(service)).result()


@pytest.fixture(scope="module")
def clean_run(standin, tmp_path_factory):
    """The stand-in on 40 queries (with duplicates and empties), no faults: the reference."""
    queries = TEXTS[100:140] + TEXTS[100:103] + ["", " \t\n"]
    out = tmp_path_factory.mktemp("clean") / "distill.jsonl"
    summary = generate(standin, queries, out, config=GenerateConfig(concurrency=8), progress=False)
    return queries, out, summary


def test_settings_from_a_numpy_grid_generate(standin, tmp_path):
    """numpy numbers pass GenerateConfig's checks and are written as Python's (int64 is not JSON)."""
    config = GenerateConfig(temperature=np.float32(1.0), num_samples=np.int64(3), seed=np.int64(7),
                            concurrency=np.int64(4))
    summary = generate(standin, TEXTS[:5], tmp_path / "d.jsonl", config=config, progress=False)
    assert summary.rows == 5 and type(config.seed) is int and type(config.temperature) is float


# --------------------------------------------------------------------------- resume


def test_resume_after_sigkill_is_byte_identical(tmp_path):
    reference = tmp_path / "reference.jsonl"
    ref = resume_case(str(reference), delay=0.0)
    assert ref.rows > 0 and ref.rejects["unparsed"] > 0 and ref.rejects["low_agreement"] > 0

    out = tmp_path / "killed.jsonl"
    journal = sidecars(out)[".partial"]
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
              "import test_generate as t; t.resume_case(sys.argv[1], delay=0.1)")
    seen = 0
    for kill_at in (5, 20, 40):
        log = tmp_path / f"stderr-{kill_at}.txt"
        with open(log, "w") as err:
            proc = subprocess.Popen([sys.executable, "-c", script, str(out)], cwd=ROOT, stdout=err, stderr=err)
        deadline = time.monotonic() + 60
        while not journal.exists() or journal.read_bytes().count(b"\n") < kill_at:
            assert proc.poll() is None, f"run ended before it was killed: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "no progress in 60 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        lines = journal.read_bytes().count(b"\n")
        assert lines >= max(kill_at, seen)  # earlier runs' lines are kept
        seen = lines
        assert not out.exists(), "the final file must not exist before the run is finished"
        complete = journal.read_bytes().rsplit(b"\n", 1)[0].splitlines()
        assert all(json.loads(line)["key"] for line in complete)  # whole lines only, torn one cut off
        if kill_at == 20:
            with open(journal, "ab") as f:  # a line torn by a kill mid-write, for the next run to cut off
                f.write(b'{"key": "0123456789abcdef", "query": "half a li')
    assert seen < 60, "the run was nearly finished before the last kill; the test proves little"

    summary = resume_case(str(out), delay=0.0)
    assert out.read_bytes() == reference.read_bytes()
    assert sidecars(out)[".rejects.jsonl"].read_bytes() == sidecars(reference)[".rejects.jsonl"].read_bytes()
    assert not journal.exists()
    assert summary.resumed == seen and summary.labelled == 60 - seen
    assert (summary.rows, summary.rejects, summary.labels) == (ref.rows, ref.rejects, ref.labels)


def test_cancelled_run_keeps_its_journal_and_asks_failures_again(tmp_path):
    """Ctrl-C leaves no output; errors in the journal are asked again on resume, answers are not."""
    queries = TEXTS[:30]
    hang = set(queries[20:])

    async def interrupted():
        teacher = FlakyTeacher(ScriptedTeacher(lambda q, k, p: ["de"] * k), failure_rate=0.3, permanent=True, seed=3)
        inner_sample = teacher.sample

        def sample(prompt, k, params):  # queries 20.. never answer, like a stalled server
            if read_conversation(teacher.get_tokenizer().decode(prompt.to_ints()))[1] in hang:
                return concurrent.futures.Future()
            return inner_sample(prompt, k, params)

        teacher.sample = sample
        task = asyncio.create_task(generate_async(teacher, queries, out, config=GenerateConfig(concurrency=12), progress=False))
        while not journal.exists() or journal.read_bytes().count(b"\n") < 20:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        assert info.value.__notes__ == [f"generation interrupted: {20 - teacher.failures} answers are kept in "
                                        "d.jsonl.partial; the same call again asks only the others"]
        return teacher.failures

    out = tmp_path / "d.jsonl"
    journal = sidecars(out)[".partial"]
    failures = asyncio.run(interrupted())
    assert failures > 0 and not out.exists()
    entries = jsonl(journal)
    assert len(entries) == 20 and Counter(e["status"] for e in entries)["error"] == failures

    good = ScriptedTeacher(lambda q, k, p: ["de"] * k)
    summary = generate(good, queries, out, progress=False)
    assert summary.rows == 30 and sum(summary.rejects.values()) == 0
    assert summary.resumed == 20 - failures
    assert sorted(c[1] for c in good.calls) == sorted(q for q in queries if q not in {e["query"] for e in entries if e["status"] == "ok"})


def test_a_run_over_fewer_queries_keeps_the_answers_of_the_others_in_the_journal(tmp_path):
    """A journal shared by two runs into one output (say the full pool, then its quick sample):
    the second run, finished, must not delete the answers the first one paid for."""
    queries, out = TEXTS[:30], tmp_path / "d.jsonl"
    first = FlakyTeacher(ScriptedTeacher(lambda q, k, p: ["de"] * k), failure_rate=0.3, permanent=True, seed=3)
    assert generate(first, queries, out, progress=False).rejects["error"] == first.failures > 0
    failed = {e["query"] for e in jsonl(sidecars(out)[".partial"]) if e["status"] == "error"}

    generate(ScriptedTeacher(lambda q, k, p: ["de"] * k), queries[:10], out, overwrite=True, progress=False)
    assert sidecars(out)[".partial"].exists()  # it holds the other 20 queries' answers

    again = ScriptedTeacher(lambda q, k, p: ["de"] * k)
    summary = generate(again, queries, out, overwrite=True, progress=False)
    assert summary.rows == 30 and sorted(c[1] for c in again.calls) == sorted(failed - set(queries[:10]))
    assert not sidecars(out)[".partial"].exists()  # nothing of another run left in it: removed


@pytest.mark.parametrize("inside_a_loop", [False, True], ids=["script", "notebook cell"])
def test_an_interrupted_generate_says_what_it_keeps(tmp_path, inside_a_loop):
    """Ctrl-C, or a notebook's stop button, during generate(): the KeyboardInterrupt's traceback
    ends with what the journal keeps (in a cell, generate() runs in a thread of its own; in a
    script, asyncio.run raises a KeyboardInterrupt of its own)."""
    import os
    import threading

    queries = TEXTS[:30]
    out = tmp_path / "d.jsonl"
    journal = sidecars(out)[".partial"]
    teacher = ScriptedTeacher(lambda q, k, p: ["de"] * k)
    inner_sample = teacher.sample

    def sample(prompt, k, params):  # queries 10.. never answer, like a stalled server
        if read_conversation(teacher.get_tokenizer().decode(prompt.to_ints()))[1] in queries[10:]:
            return concurrent.futures.Future()
        return inner_sample(prompt, k, params)

    teacher.sample = sample

    def press_stop():
        while not journal.exists() or journal.read_bytes().count(b"\n") < 10:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C; Jupyter's stop button sends the kernel the same

    def run():
        return generate(teacher, queries, out, config=GenerateConfig(concurrency=24), progress=False)  # > stalled ones

    async def in_a_cell():
        return run()

    threading.Thread(target=press_stop, daemon=True).start()
    loop = asyncio.new_event_loop()  # as ipykernel's: a running loop, and SIGINT left to Python's KeyboardInterrupt
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            loop.run_until_complete(in_a_cell()) if inside_a_loop else run()
    finally:
        loop.close()
    assert info.value.__notes__ == ["generation interrupted: 10 answers are kept in d.jsonl.partial; "
                                    "the same call again asks only the others"]
    assert len(jsonl(journal)) == 10 and not out.exists()
    # the run has stopped by then (a cell run again may take its journal); Python 3.11's thread.join,
    # once interrupted, could return while the run's thread was still cancelling
    assert not [t for t in threading.enumerate() if t.name == "helpers.generate"]


def test_ctrl_c_stops_a_script_whose_requests_all_stall_even_when_the_signal_lands_in_another_thread(
        tmp_path, ctrl_c_from_another_thread):
    """Python runs a signal's handler in the main thread, between bytecodes: a SIGINT that the
    kernel hands to another thread (or that lands just before the event loop goes to sleep)
    waits for the loop's next event, and with every request stalled there is none. The run
    wakes its loop regularly, so Ctrl-C still stops it."""
    queries = TEXTS[:12]
    out = tmp_path / "d.jsonl"
    journal = sidecars(out)[".partial"]
    teacher = ScriptedTeacher(lambda q, k, p: ["de"] * k)
    inner_sample, stalled = teacher.sample, []

    def sample(prompt, k, params):  # queries 4.. never answer, like a stalled server
        if read_conversation(teacher.get_tokenizer().decode(prompt.to_ints()))[1] in queries[4:]:
            stalled.append(concurrent.futures.Future())
            return stalled[-1]
        return inner_sample(prompt, k, params)

    teacher.sample = sample

    def ready():  # four answers journaled, the other eight stalled
        return journal.exists() and journal.read_bytes().count(b"\n") >= 4 and len(stalled) >= 8

    def wake():
        stalled[0].set_exception(RuntimeError("woken by the test"))

    with ctrl_c_from_another_thread(ready, wake) as rescued, pytest.raises(KeyboardInterrupt):
        generate(teacher, queries, out, config=GenerateConfig(concurrency=16), progress=False)
    assert not rescued.is_set(), "the run slept through Ctrl-C until a request answered"
    assert len(jsonl(journal)) == 4 and not out.exists()


def test_second_writer_is_refused(tmp_path):
    import fcntl

    out = tmp_path / "d.jsonl"
    with open(sidecars(out)[".partial"], "ab") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(DataError, match="another generate run"):
            generate(ScriptedTeacher(lambda q, k, p: ["de"] * k), TEXTS[:3], out, progress=False)
    assert not out.exists()


# --------------------------------------------------------------------------- the stand-in, faults


def test_standin_end_to_end(clean_run):
    queries, out, summary = clean_run
    rows = jsonl(out)
    assert len(read_conversations(out)) == len(rows) == summary.rows == 40
    assert [r["messages"][0]["content"] for r in rows] == TEXTS[100:140]  # queries' order, once each
    for r in rows:
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]  # no system prompt for the student
        label = r["messages"][1]["content"]
        assert label in LABELS and parse_answer(r["teacher"]["raw"]) == label
        assert r["teacher"] == {"model": "local/policy-teacher", "raw": r["teacher"]["raw"], "votes": {label: 1}, "confidence": 1.0}
    assert (summary.queries, summary.distinct, summary.duplicates, summary.empty) == (45, 40, 3, 2)
    assert summary.labels == {k: v for k, v in zip(LABELS, [Counter(r["messages"][1]["content"] for r in rows)[k] for k in LABELS], strict=True)}
    assert sum(summary.rejects.values()) == 0 and summary.retries == 0 and summary.resumed == 0
    assert summary.labelled == 40 and summary.queries_per_second > 0
    assert summary.prompt_tokens_per_query > 2000 and 0 < summary.completion_tokens_per_query < 256
    assert json.loads(sidecars(out)[".summary.json"].read_text()) == json.loads(json.dumps(vars(summary)))
    assert sidecars(out)[".rejects.jsonl"].read_text() == "" and not sidecars(out)[".partial"].exists()
    assert "40 rows" in str(summary) and "queries/s" in str(summary)


@pytest.mark.parametrize("k", [1, 4])
def test_the_summary_counts_every_token_sent_and_sampled(tmp_path, k):
    """The token figures the cost and payback reports read, counted independently: the prompt
    as evaluate renders it for the teacher, and all K answers of a query together."""
    from helpers.evaluate import prompt_tokens_per_query

    teacher = ScriptedTeacher(lambda q, n, p: ["Final Answer: en"] * n)
    texts = TEXTS[:6]
    config = GenerateConfig(temperature=1.0 if k > 1 else 0.0, num_samples=k)
    summary = generate(teacher, texts, tmp_path / "d.jsonl", config=config, progress=False)
    tok = teacher.get_tokenizer()
    answer = len(tok.encode("Final Answer: en", add_special_tokens=False)) + 1  # and its end token
    assert summary.completion_tokens_per_query == k * answer
    assert summary.prompt_tokens_per_query == round(float(np.mean(prompt_tokens_per_query(tok, texts, True))), 1)


def test_transient_faults_are_retried_until_every_query_is_labelled(standin, clean_run, tmp_path):
    queries, reference, _ = clean_run
    flaky = FlakyTeacher(standin, failure_rate=0.3, seed=1)
    out = tmp_path / "d.jsonl"
    summary = generate(flaky, queries, out, config=GenerateConfig(concurrency=8, max_retries=10, **FAST), progress=False)
    assert flaky.failures > 5 and summary.retries == flaky.failures
    assert flaky.calls == 40 + flaky.failures
    assert summary.rows == 40 and sum(summary.rejects.values()) == 0
    assert out.read_bytes() == reference.read_bytes()  # faults change nothing in the data


def test_permanent_faults_are_rejects_with_their_reason(standin, clean_run, tmp_path):
    queries, reference, _ = clean_run
    flaky = FlakyTeacher(standin, failure_rate=0.3, permanent=True, seed=2)
    out = tmp_path / "d.jsonl"
    summary = generate(flaky, queries, out, config=GenerateConfig(concurrency=8, **FAST), progress=False)
    rejects = jsonl(sidecars(out)[".rejects.jsonl"])
    assert flaky.failures > 3 and flaky.calls == 40 and summary.retries == 0  # permanent: never retried
    assert len(rejects) == summary.rejects["error"] == flaky.failures
    assert all(r["reason"] == "error" and r["error"] == "RuntimeError: injected permanent failure (FlakyTeacher)" for r in rejects)
    rows = jsonl(out)
    assert summary.rows == len(rows) == 40 - flaky.failures
    assert {r["query"] for r in rejects} | {r["messages"][0]["content"] for r in rows} == set(TEXTS[100:140])
    assert [r for r in jsonl(reference) if r["messages"][0]["content"] not in {x["query"] for x in rejects}] == rows
    # run again once the teacher works: only the failed queries are asked, and the output is whole
    healed = FlakyTeacher(standin, failure_rate=0.0, permanent=True, seed=2)
    again = generate(healed, queries, out, config=GenerateConfig(concurrency=8, **FAST), progress=False)
    assert healed.calls == len(rejects) and again.rejects["error"] == 0 and again.rows == 40
    assert jsonl(out) == jsonl(reference) and not Path(str(out) + ".partial").exists()


def test_retries_are_bounded():
    flaky = FlakyTeacher(ScriptedTeacher(lambda q, k, p: ["de"] * k), failure_rate=1.0, seed=0)

    async def run(tmp):
        return await generate_async(flaky, TEXTS[:4], tmp / "d.jsonl", config=GenerateConfig(max_retries=2, **FAST), progress=False)

    import tempfile

    tmp = Path(tempfile.mkdtemp())
    summary = asyncio.run(run(tmp))
    assert flaky.calls == 4 * 3 and summary.retries == 4 * 2
    assert summary.rows == 0 and summary.rejects["retries_exhausted"] == 4
    assert {r["error"] for r in jsonl(sidecars(tmp / "d.jsonl")[".rejects.jsonl"])} == {"TransientError: injected transient failure (FlakyTeacher)"}


def test_error_classes():
    import tinker

    assert is_transient(TransientError("x")) and is_transient(TimeoutError()) and is_transient(ConnectionResetError())
    assert issubclass(tinker.RateLimitError, tinker.APIStatusError)
    assert all(isinstance(t, type) for t in (tinker.RateLimitError, tinker.APITimeoutError, tinker.InternalServerError))
    assert not is_transient(ValueError("bad request")) and not is_transient(KeyError("x"))
    # a Tinker request that failed on the server's side is worth another try; the user's own error is not
    from tinker.types import RequestErrorCategory

    def failed(category):
        return tinker.RequestFailedError("Request failed: x", request_id="r1", category=category)

    assert is_transient(failed(RequestErrorCategory.Server))
    from tinker.lib.retryable_exception import RetryableException

    assert is_transient(RetryableException("promise expired"))
    assert not is_transient(failed(RequestErrorCategory.User)) and not is_transient(failed(RequestErrorCategory.Unknown))


# --------------------------------------------------------------------------- voting


VOTES = {
    "majority": ["Final Answer: de", "Final Answer: de", "Final Answer: de", "Final Answer: fr"],
    "tie goes to the label listed first": ["fr", "de", "fr", "de"],
    "another tie": ["ot", "ar", "ot", "ar"],
    "no agreement": ["de", "fr", "en", "Final Answer: it"],
    "nothing parses": ["no idea", "maybe German", "", "Final Answer: it"],
    "half parse": ["blah", "Final Answer: EN", "blah", "en"],
    "thinking": ["<think>perhaps fr</think>\nFinal Answer: es"] * 4,
}


def test_majority_vote_and_agreement_filter(tmp_path):
    teacher = ScriptedTeacher(lambda q, k, p: VOTES[q][:k])
    out = tmp_path / "d.jsonl"
    config = GenerateConfig(temperature=0.8, top_p=0.9, max_tokens=64, num_samples=4, min_agreement=0.5, seed=7)
    summary = generate(teacher, list(VOTES), out, prompt=SHORT_PROMPT, config=config, progress=False)

    rows = {r["messages"][0]["content"]: r for r in jsonl(out)}
    got = {q: (r["messages"][1]["content"], r["teacher"]["votes"], r["teacher"]["confidence"]) for q, r in rows.items()}
    assert got == {
        "majority": ("de", {"de": 3, "fr": 1}, 0.75),
        "tie goes to the label listed first": ("de", {"de": 2, "fr": 2}, 0.5),
        "another tie": ("ar", {"ar": 2, "ot": 2}, 0.5),
        "half parse": ("en", {"en": 2}, 0.5),
        "thinking": ("es", {"es": 4}, 1.0),
    }
    assert rows["majority"]["teacher"]["raw"] == "Final Answer: de"
    rejects = {r["query"]: r for r in jsonl(sidecars(out)[".rejects.jsonl"])}
    assert rejects["no agreement"]["reason"] == "low_agreement" and rejects["no agreement"]["votes"] == {"de": 1, "en": 1, "fr": 1}
    assert rejects["nothing parses"] == {"query": "nothing parses", "reason": "unparsed", "raw": "no idea"}
    assert summary.rejects == {"unparsed": 1, "low_agreement": 1, "error": 0, "retries_exhausted": 0}
    assert summary.rows == 5 and sum(summary.labels.values()) == 5 and summary.labels["de"] == 2

    # What the teacher was asked: the prompt as system message, the settings, a seed per query.
    assert {c[0] for c in teacher.calls} == {SHORT_PROMPT} and len(teacher.calls) == len(VOTES)
    params = [c[3] for c in teacher.calls]
    assert all((c[2], p.temperature, p.top_p, p.max_tokens) == (4, 0.8, 0.9, 64) for c, p in zip(teacher.calls, params, strict=True))
    assert len({p.seed for p in params}) == len(VOTES)

    # Same answers, no filter: the split vote becomes a row with its low confidence.
    loose = generate(teacher, list(VOTES), tmp_path / "loose.jsonl", prompt=SHORT_PROMPT,
                     config=GenerateConfig(**{**vars(config), "min_agreement": 0.0}), progress=False)
    assert loose.rows == 6 and loose.rejects["low_agreement"] == 0
    row = [r for r in jsonl(tmp_path / "loose.jsonl") if r["messages"][0]["content"] == "no agreement"][0]
    assert (row["messages"][1]["content"], row["teacher"]["confidence"]) == ("de", 0.25)
    # The seeds are a function of the settings and the query, not of the order of requests.
    assert [c[3].seed for c in teacher.calls[len(VOTES):]] == [p.seed for p in params]


def test_the_raw_answer_kept_is_one_that_names_the_winning_label(tmp_path):
    """With several samples, the raw answer a row or a reject keeps is the first that argues for the
    label it won by, not the first sample (which may have voted for another label, or for none)."""
    answers = {"minority first": ["Final Answer: ot", "Final Answer: es", "Final Answer: es"],
               "unparsed first": ["no idea", "Final Answer: fr", "Final Answer: fr"],
               "split": ["Final Answer: en", "Final Answer: de", "Final Answer: tr"]}
    out = tmp_path / "d.jsonl"
    config = GenerateConfig(temperature=1.0, num_samples=3, min_agreement=0.5)
    generate(ScriptedTeacher(lambda q, k, p: answers[q][:k]), list(answers), out, config=config, progress=False)
    rows = {r["messages"][0]["content"]: r["teacher"] for r in jsonl(out)}
    assert rows["minority first"] == {"model": "test/scripted", "raw": "Final Answer: es", "votes": {"es": 2, "ot": 1},
                                      "confidence": 0.6667}
    assert rows["unparsed first"]["raw"] == "Final Answer: fr"
    assert jsonl(sidecars(out)[".rejects.jsonl"]) == [{"query": "split", "reason": "low_agreement", "raw": "Final Answer: de",
                                                       "votes": {"de": 1, "en": 1, "tr": 1}}]


# --------------------------------------------------------------------------- outputs and inputs


def test_overwrite_protection_and_finished_outputs(tmp_path):
    teacher = ScriptedTeacher(lambda q, k, p: ["Final Answer: tr"] * k)
    out = tmp_path / "d.jsonl"
    out.write_text("somebody else's file\n")
    with pytest.raises(DataError, match=r"d\.jsonl: exists and no d\.jsonl\.summary\.json.*overwrite=True"):
        generate(teacher, TEXTS[:5], out, progress=False)
    assert out.read_text() == "somebody else's file\n" and not teacher.calls

    first = generate(teacher, TEXTS[:5], out, overwrite=True, progress=False)
    assert first.rows == 5 and len(teacher.calls) == 5
    again = generate(teacher, [{"text": t, "id": i} for i, t in enumerate(TEXTS[:5])], out, progress=False)
    assert again == first and len(teacher.calls) == 5  # finished, same settings: no work
    # overwrite replaces another run's output, not this one's: labelling it again would be paid twice
    assert generate(teacher, TEXTS[:5], out, overwrite=True, progress=False) == first and len(teacher.calls) == 5

    for changed in (dict(config=GenerateConfig(temperature=0.5)), dict(prompt=SHORT_PROMPT), dict(teacher_name="other")):
        with pytest.raises(DataError, match="another teacher, prompt, settings or query list"):
            generate(teacher, TEXTS[:5], out, progress=False, **changed)
    with pytest.raises(DataError, match="query list"):
        generate(teacher, TEXTS[:6], out, progress=False)
    out.write_bytes(out.read_bytes().replace(b'"tr"', b'"de"'))
    with pytest.raises(DataError, match="changed after generate wrote it"):
        generate(teacher, TEXTS[:5], out, progress=False)
    redo = generate(teacher, TEXTS[:6], out, overwrite=True, progress=False)
    assert redo.rows == 6 and len(teacher.calls) == 11 and b'"de"' not in out.read_bytes()
    # 0 and 0.0 are one setting: the CLI passes floats, Python callers often ints
    zero = generate(teacher, TEXTS[:6], tmp_path / "z.jsonl", config=GenerateConfig(min_agreement=0), progress=False)
    assert generate(teacher, TEXTS[:6], tmp_path / "z.jsonl", config=GenerateConfig(min_agreement=0.0),
                    progress=False) == zero


@pytest.mark.parametrize("run, stop_at", [("rerun", "out"), ("rerun", "summary"), ("first", "summary")])
def test_a_run_stopped_while_writing_its_files_is_finished_by_the_same_call(tmp_path, monkeypatch, run, stop_at):
    """Ctrl-C while a run writes <out> or then its summary: the same call again finishes the work
    from the journal. A re-run (here, one asking a finished output's failed queries again) wrote
    its new summary before <out>, and the old <out> beside it was refused as edited by hand."""
    import helpers.generate as gen

    queries, out = TEXTS[:30], tmp_path / "d.jsonl"
    if run == "rerun":
        flaky = FlakyTeacher(ScriptedTeacher(lambda q, k, p: ["de"] * k), failure_rate=0.3, permanent=True, seed=3)
        assert generate(flaky, queries, out, progress=False).rejects["error"] == flaky.failures > 0
        finished = out.read_bytes()
        out.write_bytes(finished.replace(b'"de"', b'"tr"', 1))  # edited by hand: still never replaced
        with pytest.raises(DataError, match="changed after generate wrote it"):
            generate(ScriptedTeacher(lambda q, k, p: ["de"] * k), queries, out, progress=False)
        out.write_bytes(finished)
    stop = {"out": out, "summary": sidecars(out)[".summary.json"]}[stop_at]

    def stopping(write):
        def stopped(path, content):
            if Path(path) == stop:
                raise KeyboardInterrupt
            return write(path, content)
        return stopped

    with monkeypatch.context() as patch:
        patch.setattr(gen, "write_jsonl", stopping(gen.write_jsonl))
        patch.setattr(gen, "write_text", stopping(gen.write_text))
        with pytest.raises(KeyboardInterrupt):
            generate(ScriptedTeacher(lambda q, k, p: ["de"] * k), queries, out, progress=False)

    again = ScriptedTeacher(lambda q, k, p: ["de"] * k)
    assert estimate(again, queries, out).requests == 0  # the journal holds every answer
    summary = generate(again, queries, out, progress=False)
    assert not again.calls
    assert summary.rows == 30 and sum(summary.rejects.values()) == 0
    assert [(r["messages"][0]["content"], r["messages"][1]["content"]) for r in jsonl(out)] == [(q, "de") for q in queries]
    assert not sidecars(out)[".partial"].exists() and jsonl(sidecars(out)[".rejects.jsonl"]) == []
    assert generate(again, queries, out, progress=False) == summary and not again.calls  # finished: reused


class TokenCountingTeacher(ScriptedTeacher):
    """A scripted teacher that also adds up the prompt tokens it is sent."""

    sent = 0

    def sample(self, prompt, num_samples, sampling_params):
        self.sent += prompt.length
        return super().sample(prompt, num_samples, sampling_params)


def test_the_estimate_counts_exactly_what_generate_then_sends_and_asks_nothing(tmp_path):
    queries = TEXTS[300:330] + TEXTS[300:303] + ["  "]
    config = GenerateConfig(temperature=1.0, num_samples=3, max_tokens=16, concurrency=4)
    out = tmp_path / "d.jsonl"

    fresh = estimate(ScriptedTeacher(lambda q, k, p: ["de"] * k), queries, out, config=config)
    assert (fresh.distinct, fresh.answered, fresh.requests, fresh.max_sampled_tokens) == (30, 0, 30, 30 * 3 * 16)
    assert not any(path.exists() for path in [out, *sidecars(out).values()])  # an estimate writes nothing
    whole = TokenCountingTeacher(lambda q, k, p: ["de"] * k)
    generate(whole, queries, tmp_path / "whole.jsonl", config=config, progress=False)
    assert len(whole.calls) == fresh.requests and whole.sent == fresh.prompt_tokens > 30 * 3000

    # A run whose requests partly failed keeps its journal; the estimate leaves out what it answered.
    flaky = FlakyTeacher(ScriptedTeacher(lambda q, k, p: ["de"] * k), failure_rate=0.3, permanent=True, seed=1)
    failed = generate(flaky, queries, out, config=config, progress=False)
    left = estimate(ScriptedTeacher(lambda q, k, p: ["de"] * k), queries, out, config=config)
    assert 0 < left.requests == failed.rejects["error"] < 30 and left.answered == 30 - left.requests
    rest = TokenCountingTeacher(lambda q, k, p: ["de"] * k)
    generate(rest, queries, out, config=config, progress=False)
    assert len(rest.calls) == left.requests and rest.sent == left.prompt_tokens
    assert "prompt tokens" in str(left) and f"{left.prompt_tokens:,}" in str(left)

    done = estimate(rest, queries, out, config=config)
    assert (done.requests, done.prompt_tokens, done.answered) == (0, 0, 30)
    assert estimate(rest, queries, out, config=config, overwrite=True).requests == 0  # reused, overwrite or not
    out.write_text("somebody else's file\n")
    with pytest.raises(DataError, match=r"d\.jsonl: exists and .*overwrite=True"):  # as generate would refuse it
        estimate(rest, queries, out, config=config)
    assert len(rest.calls) == left.requests


def test_empty_and_duplicate_queries_are_counted(tmp_path):
    teacher = ScriptedTeacher(lambda q, k, p: ["en"] * k)
    queries = ["b", "", "a", " \n ", "b", "a", "b", {"text": "c"}]
    summary = generate(teacher, queries, tmp_path / "d.jsonl", progress=False)
    assert [r["messages"][0]["content"] for r in jsonl(tmp_path / "d.jsonl")] == ["b", "a", "c"]
    assert (summary.queries, summary.distinct, summary.duplicates, summary.empty, summary.rows) == (8, 3, 3, 2, 3)
    assert sorted(c[1] for c in teacher.calls) == ["a", "b", "c"]  # each labelled once
    assert summary.rows + sum(summary.rejects.values()) == summary.distinct
    assert summary.distinct + summary.duplicates + summary.empty == summary.queries

    for bad, message in (([], "no queries"), (["", "  "], "all 2 queries are empty"), (["ok", 3], "item 2")):
        with pytest.raises(DataError, match=message):
            generate(teacher, bad, tmp_path / "bad.jsonl", progress=False)


@pytest.mark.parametrize("setting, value", [
    ("temperature", -0.1), ("num_samples", 0), ("num_samples", 3), ("top_p", 0.0), ("max_tokens", 0), ("min_agreement", 1.5),
    ("concurrency", 0), ("max_retries", -1), ("backoff_base", float("nan")), ("seed", 1.5), ("teacher_model", ""),
])
def test_settings_out_of_range(setting, value):
    GenerateConfig().validate()
    with pytest.raises(DataError, match=f"^setting: {setting} "):
        GenerateConfig(**{setting: value}).validate()


def test_concurrency_is_bounded_and_requests_overlap(tmp_path):
    in_flight, peak = 0, 0

    class Counting(LatencyTeacher):
        def sample(self, *args, **kwargs):
            call = super().sample(*args, **kwargs)

            async def run():
                nonlocal in_flight, peak
                in_flight += 1
                peak = max(peak, in_flight)
                try:
                    return await call
                finally:
                    in_flight -= 1

            return run()

    teacher = Counting(ScriptedTeacher(lambda q, k, p: ["el"] * k), delay=0.05)
    started = time.monotonic()
    summary = generate(teacher, TEXTS[:64], tmp_path / "d.jsonl", config=GenerateConfig(concurrency=8), progress=False)
    assert summary.rows == 64 and peak == 8
    assert time.monotonic() - started < 64 * 0.05 / 2  # serial would take 3.2 s; ideal is 0.4 s


def test_sync_wrapper_inside_a_running_event_loop(tmp_path):
    async def notebook_cell():  # Jupyter runs cells inside an event loop
        return generate(ScriptedTeacher(lambda q, k, p: ["zh"] * k), TEXTS[:3], tmp_path / "d.jsonl", progress=False)

    assert asyncio.run(notebook_cell()).labels["zh"] == 3


def test_command_line(tmp_path, capsys):
    queries = tmp_path / "q.jsonl"
    queries.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in TEXTS[200:206] + [""]))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "d.jsonl"
    args = parser.parse_args(["--queries", str(queries), "--out", str(out), "--backend", "local", "--no-progress",
                              "--samples", "2", "--temperature", "0.7", "--concurrency", "4"])
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "6 rows" in printed and "1 empty" in printed
    assert json.loads(sidecars(out)[".summary.json"].read_text())["config"]["num_samples"] == 2
    ahead = tmp_path / "later" / "ahead.jsonl"
    assert main(parser.parse_args(["--queries", str(queries), "--out", str(ahead), "--backend", "local",
                                   "--estimate"])) == 0
    assert capsys.readouterr().out.startswith("6 requests to local/policy-teacher (0 of 6 distinct queries already "
                                              "answered): ")
    assert not ahead.parent.exists()  # an estimate writes nothing, not even the output's folder

    for argv, message in ((["--samples", "0"], "setting: num_samples"), (["--prompt-file", str(tmp_path / "no.txt")], "no such file")):
        with pytest.raises(DataError, match=message):
            main(parser.parse_args(["--queries", str(queries), "--out", str(tmp_path / "x.jsonl"), *argv]))
    prompt = tmp_path / "prompt.txt"
    prompt.write_text(DEFAULT_PROMPT)
    with pytest.raises(DataError, match="overwrite"):  # the same output with other settings (1 sample, not 2)
        main(parser.parse_args(["--queries", str(queries), "--out", str(out), "--backend", "local", "--no-progress",
                                "--prompt-file", str(prompt)]))


def test_a_stalled_teacher_is_reported_once_and_the_run_goes_on(monkeypatch, capsys, tmp_path):
    """A server that stops answering is silent (Tinker's SDK retries quietly for up to two
    hours): after STALL_NOTICE_SECONDS with no answer, generation says so once, with what to
    do, and when the answers come back the run finishes as if nothing happened."""
    import threading

    import helpers.generate as gen

    monkeypatch.setattr(gen, "STALL_NOTICE_SECONDS", 0.4)
    scripted = ScriptedTeacher(lambda q, k, p: ["Final Answer: en"] * k)
    release = threading.Event()

    class Stalls:  # answers the first 5 queries at once, the rest only after `release`
        def __init__(self):
            self.calls = 0

        def get_tokenizer(self):
            return scripted.get_tokenizer()

        def sample(self, prompt, num_samples, params):
            self.calls += 1
            if self.calls <= 5:
                return scripted.sample(prompt, num_samples, params)
            future = concurrent.futures.Future()

            def later():
                release.wait()
                future.set_result(scripted.sample(prompt, num_samples, params).result())
            threading.Thread(target=later, daemon=True).start()
            return future

    threading.Timer(2.0, release.set).start()
    summary = generate(Stalls(), TEXTS[:20], tmp_path / "d.jsonl", config=GenerateConfig(concurrency=4),
                       progress=False, teacher_name="test/stalls")
    notices = [line for line in capsys.readouterr().err.splitlines() if line.startswith("teacher: no answer for")]
    assert summary.rows == 20
    assert len(notices) == 1 and "the 5 answers so far are kept" in notices[0] and "run it again later" in notices[0]


def test_a_teacher_whose_context_cannot_take_the_prompt_is_refused_before_asking(tmp_path):
    """A model whose context cannot take the prompt would reject every query: the command names
    the setting on one line, asks nothing and writes nothing."""
    queries = tmp_path / "q.jsonl"
    queries.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:3]))
    proc = subprocess.run([sys.executable, "-m", "helpers", "generate", "--queries", str(queries), "--out",
                           str(tmp_path / "out" / "d.jsonl"), "--teacher", "local/tiny", "--backend", "local",
                           "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: setting: prompt: it takes "), proc.stderr[-2000:]
    assert "more than local/tiny's context of 512" in lines[0]
    assert not (tmp_path / "out").exists()

