"""Tests for helpers.evaluate, helpers.plots and helpers.baseline: how to call them, and that they are right.

Predictors run on the local backend (the stand-in teacher, the tiny student); the
metrics themselves are tested in test_metrics.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

from helpers import connect
from helpers.baseline import load_baseline, read_meta, save_baseline, train_baseline
from helpers.baseline import predict as baseline_predict
from helpers.dataio import DataError, read_gold, write_jsonl
from helpers.evaluate import (
    LOCAL_TEACHER,
    PRICES,
    STUDENT_MAX_TOKENS,
    UNPARSED,
    Prediction,
    _run_bounded,
    add_arguments,
    compute_metrics,
    cost_table,
    error_table,
    main,
    markdown_table,
    measure_latency,
    parse_spec,
    payback,
    predict,
    prompt_tokens_per_query,
    read_metrics,
    run_payback,
    write_metrics,
)
from helpers.labels import LABELS
from helpers.plots import LiveLossPlot, plot_confusions, plot_cost, save_figure
from helpers.prompt import DEFAULT_PROMPT, count_tokens

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return connect("local", store=tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def dev_rows():
    return read_gold(ROOT / "data" / "dev_gold.jsonl")


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory, dev_rows):
    """A baseline trained on the first 300 dev rows (the later ones are held out)."""
    model = train_baseline([r["text"] for r in dev_rows[:300]], [r["label"] for r in dev_rows[:300]], seed=0)
    return save_baseline(model, tmp_path_factory.mktemp("runs") / "baseline", data="dev_gold[:300]"), model


def test_an_error_table_reads_as_markdown_with_unparsed_spelled_out():
    rows = error_table(["one", "two"], ["en", "de"], {"teacher": ["en", "de"], "student": ["en", None]})
    table = markdown_table(rows)
    assert "| index | text | gold | teacher | student |" in table
    assert "(unparsed)" in table


def test_write_metrics_names_the_file_and_stores_nan_as_null(tmp_path):
    path = write_metrics(tmp_path, "student", {"n": 1, "kappa": float("nan")})
    assert path.name == "metrics_student.json"
    assert json.loads(path.read_text()) == {"n": 1, "kappa": None}
    assert write_metrics(tmp_path, None, {"n": 1}).name == "metrics.json"
    assert json.loads(write_metrics(tmp_path, "a", {"confusion": np.array([[1, 0], [0, 2]]), "mean": np.array(0.5),
                                                    "kappa": np.float32("nan")}).read_text()) == {
        "confusion": [[1, 0], [0, 2]], "mean": 0.5, "kappa": None}  # numpy values, as one's own metrics may hold


def test_a_baseline_is_saved_whole_or_not_at_all(tmp_path):
    """meta.json's extra values are checked before anything is written (numpy numbers are
    fine), a broken meta.json is named in one line, and no temporary file is left."""
    model = train_baseline(["hallo welt", "hola mundo"] * 5, ["de", "es"] * 5)
    with pytest.raises(DataError, match=r"save_baseline: note=<object object at .*> cannot go into meta.json"):
        save_baseline(model, tmp_path / "refused", note=object())
    assert not (tmp_path / "refused").exists()  # it left baseline.joblib without meta.json
    folder = save_baseline(model, tmp_path / "kept", runs=np.int64(3), score=float("nan"))
    assert json.loads((folder / "meta.json").read_text(), parse_constant=lambda c: pytest.fail(c))["score"] is None
    assert read_meta(folder)["runs"] == 3 and sorted(p.name for p in folder.iterdir()) == ["baseline.joblib", "meta.json"]
    (folder / "meta.json").write_text("{broken")
    with pytest.raises(DataError, match=r"meta.json:1: malformed JSON \(.*\); save the baseline again$"):
        read_meta(folder)


def test_a_baseline_meta_file_that_is_not_utf8_or_not_an_object_is_named_in_one_line(tmp_path):
    model = train_baseline(["hallo welt", "hola mundo"] * 5, ["de", "es"] * 5)
    folder = save_baseline(model, tmp_path / "b")
    (folder / "meta.json").write_bytes('{"note": "café"}'.encode("latin-1"))  # saved by another editor, say
    with pytest.raises(DataError, match=f"^{re.escape(str(folder / 'meta.json'))}: invalid UTF-8 at byte 13; "
                                        "save the baseline again$"):
        read_meta(folder)
    (folder / "meta.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="meta.json: not a baseline's meta.json \\(not a JSON object\\)"):
        read_meta(folder)
    (folder / "meta.json").write_text("")
    assert read_meta(folder) == {} and read_meta(tmp_path / "none") == {}  # none or empty: nothing recorded


# ---------------------------------------------------------------- cost


def test_prompt_tokens_teacher_exceeds_student_by_the_prompt():
    from helpers.local import load_tokenizer

    tok = load_tokenizer()
    texts = ["Guten Morgen", "Où est la gare, s'il vous plaît ?", "SELECT * FROM users;"]
    teacher = prompt_tokens_per_query(tok, texts, with_prompt=True)
    student = prompt_tokens_per_query(tok, texts, with_prompt=False)
    extra = {t - s for t, s in zip(teacher, student, strict=True)}
    assert len(extra) == 1  # the same prompt on every query
    prompt = count_tokens(tok, DEFAULT_PROMPT)
    assert prompt <= extra.pop() <= prompt + 8  # the prompt plus the system turn's markup
    assert all(s > 0 for s in student)

    cost = cost_table(teacher, student, {"teacher": 1.0, "student": 0.5})
    assert cost["teacher_tokens_per_query"] == pytest.approx(np.mean(teacher))
    assert cost["ratio"] == pytest.approx(np.mean(teacher) / np.mean(student))
    assert cost["savings_usd_per_million_queries"] == pytest.approx(np.mean(teacher) - 0.5 * np.mean(student))
    assert "EXAMPLE" in cost_table(teacher, student)["prices_note"]
    assert "EXAMPLE" in cost_table(teacher, student, dict(PRICES))["prices_note"]  # a copy left unedited
    assert "EXAMPLE" not in cost["prices_note"]


def test_a_one_off_cost_of_a_whole_number_of_savings_pays_back_after_that_many_queries():
    """Labelling L queries at 300 prompt tokens and 0.1 per million, the rest free, costs exactly
    L savings: the break-even is L, never L + 1 from floating-point error (it was for 13 of
    1..1999, 395 -> 396 the first)."""
    prices = {"teacher": 0.1, "student": 0.1, "sampled": 0, "train": 0}
    cost = cost_table(300, 0, prices)
    assert [payback(cost, 395, 0, 0, 0, prices)["break_even_queries"],
            payback(cost, 1892, 0, 0, 0, prices)["break_even_queries"]] == [395, 1892]
    assert all(payback(cost, n, 0, 0, 0, prices)["break_even_queries"] == n for n in range(1, 2000))
    assert payback(cost, 395, 1, 0, 0, {**prices, "train": 0.6})["break_even_queries"] == 396  # a little more: one more
    assert payback(cost_table(np.float64(300), 0, prices), np.int64(395), 0, 0, 0, prices)["break_even_queries"] == 395
    with pytest.raises(ValueError, match="finite"):
        payback(cost, 395, 0, 0, 0, {**prices, "teacher": float("inf")})


def test_edited_prices_are_no_longer_called_examples(monkeypatch):
    """The docs say: edit helpers.evaluate.PRICES. Once edited, the default prices are the user's."""
    assert "EXAMPLE" in cost_table(3000, 60)["prices_note"] and "EXAMPLE" in payback(cost_table(3000, 60), 1, 1, 1, 1)["prices_note"]
    monkeypatch.setitem(PRICES, "teacher", 0.35)
    assert "EXAMPLE" not in cost_table(3000, 60)["prices_note"]
    assert "EXAMPLE" not in payback(cost_table(3000, 60), 1, 1, 1, 1)["prices_note"]
    assert cost_table(3000, 60)["teacher_usd_per_million_queries"] == pytest.approx(3000 * 0.35)


def test_payback_counts_labelling_training_and_answers_by_hand():
    """By hand: the teacher reads 3,000 prompt tokens and writes 40 per query; the student reads
    60 and writes 2. Prices per million: prompt 0.1 (teacher) and 0.3 (student), written 1.0,
    trained 2.0. Labelling 5,000 queries and training on 1.5M tokens."""
    prices = {"teacher": 0.1, "student": 0.3, "sampled": 1.0, "train": 2.0}
    p = payback(cost_table(3000, 60, prices), 5000, 1_500_000, 40, 2, prices)
    teacher = (3000 * 0.1 + 40 * 1.0) / 1e6  # 340e-6 USD per query
    student = (60 * 0.3 + 2 * 1.0) / 1e6  # 20e-6
    assert p["teacher_usd_per_query"] == pytest.approx(teacher)
    assert p["student_usd_per_query"] == pytest.approx(student)
    assert p["labelling_usd"] == pytest.approx(5000 * teacher)  # 1.70
    assert p["training_usd"] == pytest.approx(3.0)
    assert p["one_off_usd"] == pytest.approx(4.7)
    assert p["break_even_queries"] == 14688  # 4.7 / 320e-6 = 14,687.5, rounded up
    assert "EXAMPLE" not in p["prices_note"] and "EXAMPLE" in payback(cost_table(3000, 60), 1, 1, 1, 1)["prices_note"]
    # a student that costs as much per query as the teacher never pays back
    assert payback(cost_table(100, 100, prices), 10, 10, 2, 2, prices)["break_even_queries"] is None
    # a run resumed across versions: only the steps that counted no tokens are estimated
    history = [{"step": 1}, {"step": 2}, {"step": 3, "tokens": 500}, {"step": 4, "tokens": 700}]
    run = run_payback(cost_table(3000, 60, prices), {"distinct": 5000, "completion_tokens_per_query": 40}, history, 8, prices)
    assert run["train_tokens"] == 500 + 700 + 2 * 8 * (60 + 2) and run["train_tokens_estimated"]
    counted = run_payback(cost_table(3000, 60, prices), {"distinct": 5000, "completion_tokens_per_query": 40}, history[2:], 8, prices)
    assert counted["train_tokens"] == 1200 and not counted["train_tokens_estimated"]
    with pytest.raises(ValueError, match="prices needs 'sampled', 'train'"):
        payback(cost_table(3000, 60), 5000, 1, 40, 2, {"teacher": 0.1, "student": 0.1})
    with pytest.raises(ValueError, match="train_tokens must be >= 0, got -1"):
        payback(cost_table(3000, 60), 5000, -1, 40, 2)


def test_run_reports_what_it_spent_and_when_the_student_pays_it_back(tmp_path):
    """python -m helpers run counts its own labelling requests and trained tokens into the payback;
    run --estimate (estimate_run) counted them beforehand, writing nothing: the requests exactly,
    the training as an upper bound that the run comes close to."""
    from helpers.pipeline import estimate_run, run_pipeline

    queries, gold = tmp_path / "q.jsonl", tmp_path / "g.jsonl"
    write_jsonl(queries, read_gold(ROOT / "data" / "dev_gold.jsonl")[:30])
    write_jsonl(gold, read_gold(ROOT / "data" / "dev_gold.jsonl")[30:40])
    settings = {"backend": "local", "quick": True, "queries": queries, "gold": gold}
    train_overrides = {"epochs": 2, "batch_size": 8}
    before = estimate_run(tmp_path / "run", train_overrides=train_overrides, **settings)
    assert not (tmp_path / "run").exists()
    report = run_pipeline(tmp_path / "run", progress=False, train_overrides=train_overrides, **settings)
    paid = report["payback"]
    steps = json.loads((tmp_path / "run" / "student" / "progress.json").read_text())["history"]
    assert before.generation.requests == 30 and before.eval_requests == {"teacher": 10, "base": 10, "student": 10}
    assert before.epochs == 2 and 0.85 * before.train_tokens <= paid["train_tokens"] <= before.train_tokens
    assert before.usd["total"] == pytest.approx(sum(v for k, v in before.usd.items() if k != "total"))
    assert estimate_run(tmp_path / "run", **settings).generation.requests == 0  # labelled: nothing left to ask
    assert paid["labelled_queries"] == report["generation"]["distinct"] == 30
    assert paid["train_tokens"] == sum(step["tokens"] for step in steps) > 0 and not paid["train_tokens_estimated"]
    assert paid["one_off_usd"] == pytest.approx(30 * paid["teacher_usd_per_query"] + paid["train_tokens"] * PRICES["train"] / 1e6)
    assert paid["break_even_queries"] == math.ceil(paid["one_off_usd"] / paid["saving_usd_per_query"])
    assert f"pays back after    {paid['break_even_queries']:,} queries" in report["summary"]
    assert f"({paid['train_tokens']:,} tokens)" in (tmp_path / "run" / "report.md").read_text()
    assert f"Training: trained local/tiny for {len(steps)} steps in" in (tmp_path / "run" / "report.md").read_text()
    # its baseline learnt the stand-in teacher's labels, and says so (evaluate marks its pictures offline)
    assert {k: read_meta(tmp_path / "run" / "baseline")[k] for k in ("backend", "teacher_model")} == {
        "backend": "local", "teacher_model": LOCAL_TEACHER}
    # again, into the folder with a file of the learner's: --overwrite lets the run write beside it,
    # and reuses the labelling and the student (labelling again would be paid twice on Tinker)
    (tmp_path / "run" / "notes.txt").write_text("mine")
    labelled = (tmp_path / "run" / "distill.jsonl").stat().st_mtime_ns
    again = run_pipeline(tmp_path / "run", progress=False, train_overrides=train_overrides, overwrite=True, **settings)
    assert again["generation"] == report["generation"] and (tmp_path / "run" / "distill.jsonl").stat().st_mtime_ns == labelled
    assert f"Training: reused the finished run of local/tiny ({len(steps)} steps; nothing trained)" in (
        tmp_path / "run" / "report.md").read_text()
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------- predictors


def test_parse_spec():
    assert parse_spec("baseline:runs/x/baseline") == ("baseline", "runs/x/baseline")
    for bad in ("student", "teacher:x", "gpt", "student:"):
        with pytest.raises(DataError, match="predictor"):
            parse_spec(bad)


def test_run_bounded_keeps_order_and_bounds_the_calls_in_flight():
    state = {"submitted": 0, "finished": 0, "max": 0}

    class Lazy:  # a future that is not done until asked, like a slow server
        def __init__(self, value):
            self.value = value

        def result(self):
            return self.value

    def submit(i):
        state["submitted"] += 1
        state["max"] = max(state["max"], state["submitted"] - state["finished"])
        return Lazy(i * 10)

    got = []

    def finish(i, value):
        state["finished"] += 1
        got.append((i, value))

    _run_bounded(25, submit, finish, concurrency=4)
    assert got == [(i, i * 10) for i in range(25)]
    assert state["max"] == 4


def test_run_bounded_retries_transient_failures_and_stops_on_others():
    from helpers.generate import TransientError

    class Done:
        def __init__(self, value=None, error=None):
            self.value, self.error = value, error

        def result(self):
            if self.error:
                raise self.error
            return self.value

    calls = {}

    def flaky(i):  # the first two calls for every third query fail transiently
        calls[i] = calls.get(i, 0) + 1
        return Done(error=TransientError("rate limited")) if i % 3 == 0 and calls[i] <= 2 else Done(i * 10)

    got = []
    _run_bounded(12, flaky, lambda i, v: got.append((i, v)), concurrency=4)
    assert got == [(i, i * 10) for i in range(12)] and calls[0] == 3 and calls[1] == 1

    def broken(i):
        return Done(error=ValueError("bad request: query too long")) if i == 5 else Done(i)

    with pytest.raises(ValueError, match="query too long"):
        _run_bounded(12, broken, lambda i, v: None, concurrency=4)


def test_predict_with_a_ready_client_keeps_raw_text_and_unparsed():
    from tinker import types

    from helpers.evaluate import predict_with_client
    from helpers.local import load_tokenizer

    tok = load_tokenizer()
    answers = {"a": "Final Answer: de", "b": "no idea"}

    class Client:
        def get_tokenizer(self):
            return tok

        def sample(self, prompt, num_samples, params):
            assert params.temperature == 0 and params.max_tokens == 8
            text = tok.decode(prompt.to_ints())
            raw = answers["a" if "query a" in text else "b"]
            fut = Future()
            seq = types.SampledSequence(stop_reason="stop", sequence_id="x",
                                        tokens_np=np.asarray(tok.encode(raw), dtype=np.int32))
            fut.set_result(types.SampleResponse(sequences=[seq]))
            return fut

    preds = predict_with_client(Client(), ["query a", "query b"], with_prompt=False, progress=False)
    assert preds == [Prediction("de", "Final Answer: de"), Prediction(None, "no idea")]


def test_a_server_that_would_sample_past_the_end_of_turn_still_gives_the_label():
    """A server whose own end-of-sequence set lacks the template's end of turn samples on into
    a made-up next turn unless told where to stop: the request names the stop token, and the
    answer is read only up to it either way."""
    from tinker import types

    from helpers.evaluate import predict_with_client
    from helpers.local import load_tokenizer

    tok = load_tokenizer()
    end = tok.convert_tokens_to_ids("<|im_end|>")
    ramble = tok.encode("de<|im_end|>\n<|im_start|>user\nund dann", add_special_tokens=False)
    asked = []

    class Client:
        def __init__(self, obeys_stop: bool):
            self.obeys_stop = obeys_stop

        def get_tokenizer(self):
            return tok

        def sample(self, prompt, num_samples, params):
            asked.append(params.stop)
            tokens = ramble[: params.max_tokens]
            if self.obeys_stop and params.stop:
                tokens = tokens[: next(i for i, t in enumerate(tokens) if t in params.stop) + 1]
            fut = Future()
            fut.set_result(types.SampleResponse(sequences=[types.SampledSequence(
                stop_reason="stop", sequence_id="x", tokens_np=np.asarray(tokens, dtype=np.int32))]))
            return fut

    for obeys in (True, False):
        assert predict_with_client(Client(obeys), ["Guten Morgen"], with_prompt=False, progress=False) == [
            Prediction("de", "de")]
    assert asked == [[end], [end]]


def test_teacher_on_dev_gold_is_accurate(service, dev_rows):
    rows = dev_rows[:30]
    preds = predict("teacher", [r["text"] for r in rows], service, progress=False)
    assert len(preds) == 30 and all(isinstance(p, Prediction) for p in preds)
    assert all("Final Answer:" in p.raw for p in preds)
    m = compute_metrics([r["label"] for r in rows], preds)
    assert m["accuracy"] >= 0.9


def test_measure_latency_returns_seconds_per_query(service):
    client = service.create_sampling_client(base_model=LOCAL_TEACHER).result()
    seconds = measure_latency(client, client.get_tokenizer(), ["hallo welt, wie geht es", "hello world"],
                              with_prompt=True)
    assert 0 < seconds < 30

    class Slow:  # answers after 1 s the first time (loading, untimed), 0.01 s after, and counts
        def __init__(self):
            self.calls = 0

        def sample(self, prompt, num_samples, params):
            time.sleep(1.0 if self.calls == 0 else 0.01)
            self.calls += 1
            return client.sample(prompt, num_samples, params)

    slow = Slow()
    texts = ["hallo welt", "hello world", "hola mundo", "bonjour le monde"]
    seconds = measure_latency(slow, client.get_tokenizer(), texts, with_prompt=True)
    assert slow.calls == len(texts) + 1  # one untimed warm-up, then each query once
    assert 0.01 <= seconds < 0.25  # per query; counted, the warm-up alone would make it 0.25 or more


def test_base_model_answers_without_the_prompt(service, recorded_prompts):
    """The base model is asked each query as the student is, without the teacher's prompt."""
    from helpers.prompt import student_messages
    from helpers.render import model_input

    asked, recording = recorded_prompts

    class Recording:  # the service, whose sampling clients record the prompts they are given
        backend = "local"

        def __getattr__(self, name):
            return getattr(service, name)

        def create_sampling_client(self, **kwargs):
            return recording(service.create_sampling_client(**kwargs).result())

    texts = ["Guten Morgen, wie geht es?", "Good morning!"]
    preds = predict("base", texts, Recording(), progress=False)
    tok = service.create_sampling_client(base_model="local/tiny").result().get_tokenizer()
    assert len(preds) == 2
    assert sorted(asked) == sorted(model_input(tok, student_messages(t)).to_ints() for t in texts)


def test_a_query_too_long_for_the_model_counts_as_unparsed_and_the_others_are_answered(service, capsys):
    long = "Das Wetter ist heute schön und wir gehen spazieren. " * 100  # far over the 512-token context
    texts = ["Good morning!", long, "Guten Morgen, wie geht es?", long]
    preds = predict("base", texts, service, progress=False)
    assert [p.label for p in preds[1::2]] == [None, None]
    assert all(p.raw.startswith("(not asked: ") and "context of 512" in p.raw for p in preds[1::2])
    assert not any(p.raw.startswith("(not asked") for p in preds[0::2])  # asked, whatever they said
    err = capsys.readouterr().err
    assert "2 of 4 queries (the first: number 2) do not fit the model's context of 512 tokens" in err
    m = compute_metrics(["de", "de", "de", "de"], [p.label for p in preds])
    assert m["unparsed"] >= 2 and m["n"] == 4


def test_a_query_is_asked_only_when_it_and_the_longest_answer_fit_the_context_together(service, capsys,
                                                                                       query_of_prompt_length):
    """Tinker refuses a prompt whose tokens plus max_tokens exceed the model's context, and so
    does the local client: at the student's 8-token answers on a 512-token model, a 504-token
    prompt is asked and a 505-token one is not (it would stop the evaluation on Tinker)."""
    from helpers.local.clients import LocalBackendError
    from helpers.prompt import student_messages
    from helpers.render import model_input, sampling_params

    tokenizer = service.create_sampling_client(base_model="local/tiny").result().get_tokenizer()
    fits, over = query_of_prompt_length(512 - STUDENT_MAX_TOKENS), query_of_prompt_length(513 - STUDENT_MAX_TOKENS)
    preds = predict("base", [fits, over], service, progress=False)
    assert not preds[0].raw.startswith("(not asked") and preds[1].raw.startswith("(not asked: 505 tokens and up to 8")
    assert "1 of 2 queries (the first: number 2) do not fit" in capsys.readouterr().err
    client = service.create_sampling_client(base_model="local/tiny").result()
    client.sample(model_input(tokenizer, student_messages(fits)), 1, sampling_params(tokenizer, 8)).result()
    with pytest.raises(LocalBackendError, match="prompt of 505 tokens [+] 8 max_tokens does not fit the context"):
        client.sample(model_input(tokenizer, student_messages(over)), 1, sampling_params(tokenizer, 8)).result()


def test_student_predictor_reads_checkpoint_json(service, tmp_path):
    from helpers.train import TrainConfig, train

    rows = [{"messages": [{"role": "user", "content": "Guten Morgen zusammen"},
                          {"role": "assistant", "content": "de"}]}] * 4
    result = train(service, rows, TrainConfig(epochs=1, batch_size=4, val_fraction=0, warmup_steps=0), out_dir=tmp_path)
    opened = []

    class Recording:  # the service, recording which weights each sampling client is opened on
        backend = "local"

        def __getattr__(self, name):
            return getattr(service, name)

        def create_sampling_client(self, model_path=None, base_model=None, **kwargs):
            opened.append((model_path, base_model))
            return service.create_sampling_client(model_path=model_path, base_model=base_model, **kwargs)

    preds = predict(f"student:{tmp_path}", ["Guten Morgen zusammen"], Recording(), progress=False)
    assert opened == [(result.sampler_path, None)]  # the trained student's saved weights, not the base model
    assert len(preds) == 1 and preds[0].raw == predict("student:" + str(tmp_path), ["Guten Morgen zusammen"],
                                                       service, progress=False)[0].raw
    with pytest.raises(DataError, match="checkpoint.json"):
        predict(f"student:{tmp_path / 'nowhere'}", ["x"], service, progress=False)
    # a student is evaluated on the backend it was trained on, in one line saying which
    (tmp_path / "tinker").mkdir()
    (tmp_path / "tinker" / "checkpoint.json").write_text(json.dumps({"sampler_path": "tinker://run-1/sampler_weights/final"}))
    with pytest.raises(DataError, match="the student was trained on Tinker; evaluate it with --backend tinker"):
        predict(f"student:{tmp_path / 'tinker'}", ["x"], service, progress=False)

    class Remote:
        backend = "tinker"

    with pytest.raises(DataError, match="trained on the local backend; evaluate it with --backend local"):
        predict(f"student:{tmp_path}", ["x"], Remote(), progress=False)


# ---------------------------------------------------------------- baseline


def test_baseline_train_save_load_round_trip(baseline_dir, dev_rows):
    folder, model = baseline_dir
    loaded = load_baseline(folder)
    held_out = [r["text"] for r in dev_rows[300:]]
    assert baseline_predict(loaded, held_out) == baseline_predict(model, held_out)
    meta = read_meta(folder)
    assert meta["data"] == "dev_gold[:300]" and set(meta["labels"]) <= set(LABELS)
    preds = predict(f"baseline:{folder}", held_out[:5], progress=False)
    assert [p.label for p in preds] == baseline_predict(model, held_out[:5])
    m = compute_metrics([r["label"] for r in dev_rows[300:]], baseline_predict(loaded, held_out))
    assert m["accuracy"] > 0.5 and m["unparsed"] == 0
    with pytest.raises(DataError, match="no such"):
        load_baseline(folder.parent / "missing")
    with pytest.raises(DataError, match="two or more"):
        train_baseline(["a b", "c d"], ["de", "de"])


# ---------------------------------------------------------------- plots


def _metrics_trio():
    gold = ["de", "en", "en", "ot", "fr", "fr"]
    return {
        "teacher": compute_metrics(gold, gold),
        "base": compute_metrics(gold, [None] * 6),
        "student": compute_metrics(gold, ["de", "en", "fr", "ot", "fr", None]),
    }


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_plots_share_one_colour_scale(tmp_path, normalize):
    fig = plot_confusions(_metrics_trio(), normalize=normalize)
    panels, colorbar = fig.axes[:3], fig.axes[3:]
    assert len(fig.axes) == 4 and len(colorbar) == 1  # one axis per predictor + one colour bar
    limits = {ax.images[0].get_clim() for ax in panels}
    assert len(limits) == 1  # shared scale
    assert limits.pop() == (0.0, 1.0 if normalize else 2.0)  # the largest cell of any panel
    assert [ax.get_title().splitlines()[0] for ax in panels] == ["teacher", "base", "student"]
    assert [t.get_text() for t in panels[0].get_xticklabels()][-1] == UNPARSED
    path = save_figure(fig, tmp_path / "sub" / "confusion.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_rare_mistake_in_a_normalised_matrix_reads_under_one_percent_not_zero():
    gold = ["de"] * 300 + ["en"] * 3
    pred = ["de"] * 299 + ["fr"] + ["en"] * 3  # one German text in 300 taken for French: 0.33%
    panel = plot_confusions({"student": compute_metrics(gold, pred)}, normalize=True).axes[0]
    texts = [t.get_text() for t in panel.texts if t.get_text()]
    assert sorted(texts) == ["100", "100", "<1"]  # de->de rounds to 100; the 0.33% is not a "0"


def test_a_mistake_of_exactly_half_a_percent_reads_under_one_percent_not_zero():
    gold = ["de"] * 200
    pred = ["de"] * 199 + ["fr"]  # 0.5%, which Python's rounding (half to even) prints as "0"
    panel = plot_confusions({"student": compute_metrics(gold, pred)}, normalize=True).axes[0]
    assert sorted(t.get_text() for t in panel.texts if t.get_text()) == ["100", "<1"]


def test_cost_plot_and_saving(tmp_path):
    fig = plot_cost(cost_table(1000, 50))
    bars = fig.axes[0].patches
    assert [b.get_height() for b in bars] == [1000, 50]
    assert "EXAMPLE prices" in fig.axes[0].get_xlabel()  # the dollars under the bars are not real prices
    # they are the prompt tokens' dollars only (the printed account adds written tokens): the label says so
    cost = cost_table(1000, 50)
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert f"${cost['teacher_usd_per_million_queries']:,.0f} / 1M queries' prompts" in ticks[0]
    assert plot_cost(cost_table(1000, 50, {"teacher": 1.0, "student": 0.5})).axes[0].get_xlabel() == ""
    assert save_figure(fig, tmp_path / "cost.png").stat().st_size > 1000


def test_live_loss_plot_records_headless_and_updates_one_display(monkeypatch):
    plot = LiveLossPlot(every=5)
    assert plot.live is False  # no Jupyter kernel here: record only
    for step in range(1, 11):
        plot({"kind": "step", "step": step, "loss": 2.0 / step})
    plot({"kind": "validation", "step": 10, "val_loss": 0.3, "val_accuracy": 0.7})
    assert len(plot.steps) == 10 and len(plot.validation) == 1
    assert len(plot.figure().axes) == 2

    import IPython.display

    calls = []

    class Handle:
        def update(self, obj):
            calls.append("update")

    def fake_display(obj, display_id=None):
        calls.append("display")
        return Handle()

    monkeypatch.setattr(IPython.display, "display", fake_display)
    live = LiveLossPlot(every=5, live=True)
    for step in range(1, 16):
        live({"kind": "step", "step": step, "loss": 1.0})
    live({"kind": "validation", "step": 15, "val_loss": 0.5, "val_accuracy": 0.5})
    assert calls == ["display", "update", "update", "update"]  # steps 5, 10, 15, validation


def test_a_live_loss_plot_of_an_offline_run_says_so_at_every_drawing():
    from helpers.plots import OFFLINE_NOTE

    plot = LiveLossPlot(every=5, live=False, offline=True)
    assert plot.figure().get_suptitle() == OFFLINE_NOTE  # before any point
    for step in range(1, 11):
        plot({"kind": "step", "step": step, "loss": 2.0 / step})
    plot({"kind": "validation", "step": 10, "val_loss": 0.3, "val_accuracy": 0.7})
    assert plot.figure().get_suptitle() == OFFLINE_NOTE  # redrawn (the figure cleared): still there
    assert plot.finish().get_suptitle() == OFFLINE_NOTE and len(plot.finish().axes) == 2
    assert LiveLossPlot(live=False).figure().get_suptitle() == ""  # a Tinker run's: no note


# ---------------------------------------------------------------- command line


def _args(*argv):
    return add_arguments(argparse.ArgumentParser()).parse_args(list(argv))


def test_cli_writes_metrics_and_prints_accuracy_last(tmp_path, capsys, dev_rows, baseline_dir):
    gold = tmp_path / "gold.jsonl"
    write_jsonl(gold, dev_rows[300:340])
    out = tmp_path / "eval"
    argv = ["--data", str(gold), "--predictor", f"baseline:{baseline_dir[0]}", "--out", str(out), "--no-progress"]
    assert main(_args(*argv)) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    metrics = json.loads((out / "metrics.json").read_text())
    assert last == f"accuracy={metrics['accuracy']:.4f} n=40"
    assert (out / "confusion_baseline.png").exists() and (out / "predictions.jsonl").exists()
    # the same evaluation again: already done, same answer
    assert main(_args(*argv)) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == last
    # another evaluation into the same folder needs --overwrite
    assert main(_args(*argv[:-1], "--limit", "5")) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_the_teacher_with_an_edited_prompt_is_another_evaluation(tmp_path, capsys, monkeypatch, dev_rows):
    """The course invites edits of the teacher's prompt: the teacher evaluated again with another
    prompt into the same --out must not be taken for the evaluation already there (whose accuracy
    is the old prompt's), but refused as another one, as a retrained student is."""
    import helpers.evaluate
    from helpers.prompt import build_prompt

    gold = tmp_path / "gold.jsonl"
    write_jsonl(gold, dev_rows[:12])
    argv = ["--data", str(gold), "--predictor", "teacher", "--out", str(tmp_path / "eval"), "--no-progress"]
    assert main(_args(*argv)) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(_args(*argv)) == 0 and "already done" in capsys.readouterr().err  # the same prompt: the same one
    monkeypatch.setattr(helpers.evaluate, "DEFAULT_PROMPT", build_prompt(without=["code"]))  # prompt.py edited
    assert main(_args(*argv)) == 2
    out, err = capsys.readouterr()
    assert first not in out and "exists from another evaluation; use --overwrite" in err
    assert main(_args(*argv, "--overwrite")) == 0  # and asked again, it is asked with the edited prompt
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["fingerprint"]["prompt_sha256"] == \
        hashlib.sha256(build_prompt(without=["code"]).encode("utf-8")).hexdigest()


def test_a_baseline_of_offline_labels_is_marked_offline_whatever_the_backend_now(tmp_path, monkeypatch, dev_rows,
                                                                                 baseline_dir):
    """A baseline asks no model: whether its confusion pictures carry the offline note follows the
    backend its labels came from (its meta.json), not the backend of the environment evaluating it.
    One saved without that record is marked as before, by the backend of the moment."""
    import helpers.plots
    from helpers.baseline import labelled_offline
    from helpers.plots import OFFLINE_NOTE

    notes = {}
    original = helpers.plots.save_figure
    monkeypatch.setattr(helpers.plots, "save_figure",
                        lambda fig, path: notes.__setitem__(Path(path).name, fig.get_suptitle()) or original(fig, path))
    gold = tmp_path / "gold.jsonl"
    write_jsonl(gold, dev_rows[300:310])
    monkeypatch.delenv("PD_BACKEND")
    monkeypatch.setenv("TINKER_API_KEY", "tml-a-key-in-the-environment")  # the backend of the moment: tinker
    saved = {"local": {"backend": "local"}, "tinker": {"backend": "tinker", "teacher_model": "Qwen/Qwen3-30B-A3B"},
             "unrecorded": {}}
    marked = {}
    for name, labelled_by in saved.items():
        folder = save_baseline(baseline_dir[1], tmp_path / name, **labelled_by)
        assert labelled_offline(folder) == {"local": True, "tinker": False}.get(name)
        notes.clear()
        argv = ["--data", str(gold), "--predictor", f"baseline:{folder}", "--out", str(tmp_path / f"eval_{name}")]
        assert main(_args(*argv, "--no-progress")) == 0
        assert sorted(notes) == ["confusion_baseline.png", "confusion_baseline_normalized.png"]
        marked[name] = set(notes.values())
    assert marked == {"local": {OFFLINE_NOTE}, "tinker": {""}, "unrecorded": {""}}  # unrecorded: the key's backend
    monkeypatch.delenv("TINKER_API_KEY")
    assert main(_args("--data", str(gold), "--predictor", f"baseline:{tmp_path / 'unrecorded'}",
                      "--out", str(tmp_path / "eval_offline"), "--no-progress")) == 0
    assert set(notes.values()) == {OFFLINE_NOTE}  # and offline without a key, as it was


def test_a_metrics_file_that_is_not_text_is_named(tmp_path):
    bad = tmp_path / "metrics.json"
    bad.write_bytes(b"\xff\xfe{")  # saved as UTF-16, say
    with pytest.raises(DataError, match=f"^{re.escape(str(bad))}: not UTF-8 text"):
        read_metrics(bad)


def test_cli_bad_data_is_one_line_on_stderr(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hallo", "label": "de"}\n{"text": "ciao", "label": "it"}\n')
    assert main(_args("--data", str(bad), "--predictor", "baseline:nowhere")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{bad}:2:" in err
    assert main(_args("--data", str(bad), "--predictor", "oracle")) == 2


def test_prompt_is_long_and_counted_with_the_model_tokenizer():
    """In the local model's tokens (here, since it needs ``local/model.py``: test_labels_prompt.py
    needs only ``labels.py`` and ``prompt.py``, as the README says)."""
    from helpers.local.model import load_tokenizer
    from helpers.prompt import SHORT_PROMPT

    tok = load_tokenizer()
    n = count_tokens(tok)
    assert n > 1500  # the whole point: a long prompt paid for on every query
    assert count_tokens(tok, SHORT_PROMPT) < n / 20


def test_a_figure_is_written_through_a_temporary_file_that_is_swept_when_orphaned(tmp_path):
    """save_figure's temporary file carries its writer's pid like every other writer's, so a
    figure killed mid-write leaves an orphan the next write removes, not a stray file forever."""
    import subprocess
    import sys
    from pathlib import Path

    from matplotlib.figure import Figure

    from helpers.dataio import is_temp_file
    from helpers.plots import save_figure

    writer = subprocess.Popen([sys.executable, "-c", "pass"])
    writer.wait()  # a writer long gone: its pid is free
    orphan = tmp_path / f".confusion.png.{writer.pid}-deadbeef.tmp"
    orphan.write_bytes(b"half a picture")
    seen = []
    fig = Figure()
    original = fig.savefig
    fig.savefig = lambda name, **kw: seen.append(Path(name).name) or original(name, **kw)
    save_figure(fig, tmp_path / "confusion.png")
    assert len(seen) == 1 and is_temp_file(seen[0]) and seen[0].startswith(".confusion.png.")
    assert not orphan.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png"]


def test_ctrl_c_stops_an_evaluation_whose_requests_all_stall_even_when_the_signal_lands_in_another_thread(
        ctrl_c_from_another_thread):
    """As generate's (test_generate.py): a waiting main thread sees a SIGINT that another thread
    took only when it next runs Python, so the waits for answers wake regularly."""
    from helpers.evaluate import predict_with_client
    from helpers.local import LocalFuture

    client = connect("local").create_sampling_client(base_model="local/tiny").result()
    asked, stalled = [], []

    class Stalling:  # the first answer comes; the rest never do, like a stalled server
        def __getattr__(self, name):
            return getattr(client, name)

        def sample(self, prompt, num_samples, params):
            asked.append(prompt)
            if len(asked) == 1:
                return client.sample(prompt, num_samples, params)
            stalled.append(LocalFuture())
            return stalled[-1]

    def wake():
        for f in stalled:
            f._future.set_exception(RuntimeError("woken by the test"))

    with ctrl_c_from_another_thread(lambda: len(stalled) >= 3, wake) as rescued, pytest.raises(KeyboardInterrupt):
        predict_with_client(Stalling(), ["hola", "hello", "hallo", "salut", "ciao"], with_prompt=False,
                            progress=False, concurrency=8)
    assert not rescued.is_set(), "the evaluation slept through Ctrl-C until a request answered"
