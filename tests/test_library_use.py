"""The helpers used as a library: misuse gets one clear line before any work, never a
traceback from deep inside or a quietly wrong figure (found by a review that used them from
scripts, as the README's "Using a helper in your own project" invites)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import baseline, connect
from helpers import evaluate as ev
from helpers.dataio import DataError, read_gold, write_jsonl
from helpers.generate import GenerateConfig, generate
from helpers.metrics import agreement, agreement_by, compute_metrics, error_table
from helpers.plots import plot_confusions
from helpers.train import TrainConfig, train


@pytest.mark.parametrize("b", [["EN", "DE", "fr", "es"], ["English", "German", "fr", "es"]])
def test_agreement_refuses_answers_outside_the_labels(b):
    a = ["en", "de", "fr", "es"]
    # before: {'agreement': 0.5, 'kappa': 1.0}: kappa quietly dropped the pairs it had no label for
    with pytest.raises(ValueError, match=f"answer {b[0]!r} is neither one of the 13 labels nor None"):
        agreement(a, b)
    with pytest.raises(ValueError, match="answer 'xx' is neither"):
        agreement_by(["g", "g"], ["en", "de"], ["xx", "yy"])
    assert agreement(a, ["en", "de", None, "es"])["agreement"] == 0.75  # unparsed is still an answer


def test_a_single_string_is_refused_where_a_list_is_expected():
    with pytest.raises(DataError, match="texts: expected a list of strings"):
        ev.predict("teacher", "Hallo Welt", connect("local"), progress=False)
    with pytest.raises(DataError, match="texts: item 1 is not a string"):
        ev.predict("teacher", [None], connect("local"), progress=False)
    model = baseline.train_baseline(["hallo welt", "hola mundo"] * 5, ["de", "es"] * 5)
    with pytest.raises(DataError, match="texts: expected a list of strings"):
        baseline.predict(model, "Wie spät ist es?")
    with pytest.raises(DataError, match="texts: item 2 is not a string"):
        baseline.predict(model, ["hallo", None])
    assert baseline.predict(model, ("hallo welt",)) == ["de"]  # any list-like of strings still works
    with pytest.raises(DataError, match="baseline: texts: expected a list of strings"):
        baseline.train_baseline("ab", ["en", "es"])  # it trained on the characters 'a' and 'b'
    rows = [{"text": "hallo welt"}, {"text": "hola mundo"}]  # rows, as predict takes them
    assert baseline.predict(baseline.train_baseline(rows * 5, ["de", "es"] * 5), rows) == ["de", "es"]
    from helpers.local.model import load_tokenizer

    with pytest.raises(DataError, match="prompt_tokens_per_query: texts: expected a list of strings"):
        ev.prompt_tokens_per_query(load_tokenizer(), "hello", with_prompt=False)  # it counted 5 queries
    with pytest.raises(ValueError, match="predictions: expected a list, got a single string 'en'"):
        error_table(["a b c"], ["en"], {"s": "en"})
    with pytest.raises(ValueError, match="gold labels: expected a list"):
        compute_metrics("en", ["en"])


def test_evaluate_predictor_checks_its_rows_before_asking_anything(monkeypatch):
    asked = []
    monkeypatch.setattr(ev, "predict", lambda spec, texts, *a, **k: asked.append(texts) or [])
    rows = read_gold("data/test_gold.jsonl")[:5]
    cases = [
        ([{"text": r["text"], "lang": r["label"]} for r in rows], "gold rows: row 1: label None is not one of ar de"),
        ([{"label": "en"}], r"gold rows: row 1 is not an object with a string \"text\""),
        ([(r["text"], r["label"]) for r in rows], "gold rows: row 1 is not an object"),
        ([*rows, {"text": "x", "label": "pt"}], "gold rows: row 6: label 'pt' is not one of"),
        ([], "gold rows: no rows to score"),
        (rows[0], "gold rows: expected a list of objects"),
    ]
    for bad, message in cases:
        with pytest.raises(DataError, match=message):
            ev.evaluate_predictor("teacher", bad, connect("local"))
    assert asked == []  # on Tinker each question would have been paid for


def test_write_jsonl_writes_objects_only_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"text": "hola", "label": "es"}])
    before = path.read_bytes()
    with pytest.raises(DataError, match="rows must be a list of JSON objects, got a single dict"):
        write_jsonl(path, {"text": "a", "label": "en"})  # its keys would have become two lines
    with pytest.raises(DataError, match=r"row 2 is not a JSON object \(got str\); nothing was written"):
        write_jsonl(path, [{"text": "a"}, "hello"])
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]
    write_jsonl(path, ({"n": int(n)} for n in np.arange(2)))  # a generator of objects is fine
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"n": 0}, {"n": 1}]


def test_generate_and_train_name_a_wrong_argument(tmp_path):
    service = connect("local")
    out = tmp_path / "d.jsonl"
    with pytest.raises(DataError, match="the teacher must be a sampling client, .* got a LocalServiceClient"):
        generate(service, ["hola"], out, progress=False)
    with pytest.raises(DataError, match="config must be a GenerateConfig"):
        generate(service.create_sampling_client(base_model="local/policy-teacher"), ["hola"], out,
                 config={"concurrency": 4}, progress=False)
    assert list(tmp_path.iterdir()) == []  # no journal left behind
    with pytest.raises(DataError, match="config must be a TrainConfig"):
        train(service, [{"messages": [{"role": "user", "content": "hola"}, {"role": "assistant", "content": "es"}]}],
              {"epochs": 1})
    with pytest.raises(DataError, match="backend must be one of local, tinker, got 'Tinker'"):
        TrainConfig.for_backend("Tinker")  # it used to give the local defaults
    assert TrainConfig.for_backend("tinker").learning_rate == 1e-4
    assert TrainConfig.for_backend("local", epochs=np.int64(2)).epochs == 2  # numpy's whole numbers count
    TrainConfig.for_backend("local", epochs=np.int64(2)).validate()
    assert GenerateConfig(concurrency=np.int64(4)).validate() is None


def test_plot_confusions_names_a_single_metrics_dict():
    gold = ["en", "de", "fr"]
    metrics = compute_metrics(gold, ["en", "de", None])
    with pytest.raises(ValueError, match=r"plot_confusions takes \{name: metrics\}"):
        plot_confusions(metrics)
    assert len(plot_confusions({"student": metrics}).axes) == 2  # one panel and its colour bar
