"""The advanced experiments at the tiniest sizes: documented columns, caching, soft labels, plots.

Everything runs offline on a few dozen pool queries and ten dev rows, with one-epoch
students of ``local/tiny-small``, in a temporary ``PD_WORKDIR``. Training calls are
counted, so the cache is shown to skip them on a second call.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import pytest

from helpers import advanced as adv
from helpers import connect
from helpers.dataio import DataError, read_gold, read_queries
from helpers.labels import LABELS
from helpers.prompt import DEFAULT_PROMPT, SHORT_PROMPT, build_prompt
from helpers.render import conversation

DATA = Path(__file__).resolve().parents[1] / "data"
TINY = {"base_model": "local/tiny-small", "epochs": 1, "batch_size": 8, "warmup_steps": 0, "val_samples": 2}

COLUMNS = {
    "prompt_ablation": {"teacher", "prompt", "accuracy", "unparsed", "prompt_tokens", "n", "eval_set", "backend", "error"},
    "sampling_strategies": {"strategy", "temperature", "num_samples", "queries", "rows", "label_noise", "mean_confidence",
                            "accuracy", "accuracy_low", "accuracy_high", "agreement", "same_as_first", "n", "eval_set",
                            "backend"},
    "data_volume": {"predictor", "examples", "accuracy", "accuracy_low", "accuracy_high", "agreement",
                    "teacher_accuracy", "seconds", "n", "eval_set", "backend"},
    "hyperparameter_grid": {"learning_rate", "model", "rank", "val_loss", "val_accuracy", "accuracy", "accuracy_low",
                            "accuracy_high", "agreement", "default", "student", "examples", "seconds", "n",
                            "eval_set", "backend"},
    "soft_labels": {"targets", "temperature", "num_samples", "queries", "rows", "mean_entropy", "accuracy",
                    "accuracy_low", "accuracy_high", "agreement", "n", "eval_set", "backend"},
}


def run_all(service, rows, gold) -> dict[str, list[dict]]:
    """Every experiment at its tiniest."""
    return {
        "prompt_ablation": adv.prompt_ablation(
            service, prompts={"full prompt": DEFAULT_PROMPT, "short prompt": SHORT_PROMPT,
                              "without format": build_prompt(without=["format"])},
            teachers=["local/no-such-teacher"], gold=gold, progress=False),
        "sampling_strategies": adv.sampling_strategies(
            service, strategies=[(0.0, 1), (1.0, 3)], n_queries=16, rows=rows, gold=gold, train_overrides=TINY,
            progress=False),
        "data_volume": adv.data_volume(service, sizes=[8, 16], rows=rows, gold=gold, train_overrides=TINY,
                                       progress=False),
        "hyperparameter_grid": adv.hyperparameter_grid(
            service, learning_rates=[3e-3], models=["local/tiny-small", "local/tiny"], n_examples=16, rows=rows,
            gold=gold, train_overrides=TINY, progress=False),
        "soft_labels": adv.soft_labels(service, num_samples=3, n_queries=16, rows=rows, gold=gold,
                                       train_overrides=TINY, progress=False),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Run everything twice in a fresh workdir, counting the students trained each time."""
    with pytest.MonkeyPatch.context() as mp:
        workdir = tmp_path_factory.mktemp("advanced")
        mp.setenv("PD_WORKDIR", str(workdir))
        calls = {"n": 0}
        real_train = adv.train

        def counting_train(*args, **kwargs):
            calls["n"] += 1
            return real_train(*args, **kwargs)

        mp.setattr(adv, "train", counting_train)
        import helpers.baseline

        real_fit, fitted = helpers.baseline.train_baseline, []
        mp.setattr(helpers.baseline, "train_baseline", lambda texts, labels, *a, **k: fitted.append(list(texts))
                   or real_fit(texts, labels, *a, **k))
        service = connect("local")
        pool = read_queries(DATA / "queries.jsonl")[::150][:24]
        rows = [{"messages": conversation(q["text"], q["label"])} for q in pool]
        gold = read_gold(DATA / "dev_gold.jsonl")[::50]
        first = run_all(service, rows, gold)
        first_calls = calls["n"]
        second = run_all(service, rows, gold)
        yield {"first": first, "second": second, "first_calls": first_calls,
               "second_calls": calls["n"] - first_calls, "service": service, "rows": rows, "workdir": workdir,
               "baseline_fits": fitted}


@pytest.mark.parametrize("name", list(COLUMNS))
def test_each_experiment_returns_the_documented_columns(world, name):
    table = world["first"][name]
    assert table, f"{name} returned no rows"
    for row in table:
        assert set(row) == COLUMNS[name], f"{name}: {sorted(set(row) ^ COLUMNS[name])}"
        assert row["backend"] == "local"
        if row.get("accuracy") is not None:
            assert 0.0 <= row["accuracy"] <= 1.0
        if row.get("accuracy_low") is not None:
            assert row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"]


def test_tables_have_the_expected_rows(world):
    t = world["first"]
    assert [r["prompt"] for r in t["prompt_ablation"]] == ["full prompt", "short prompt", "without format", "full prompt"]
    assert t["prompt_ablation"][2]["accuracy"] == 0.0  # no format rule: no parseable answer
    missing = t["prompt_ablation"][3]
    assert missing["teacher"] == "local/no-such-teacher" and missing["error"] and missing["accuracy"] is None
    assert [r["strategy"] for r in t["sampling_strategies"]] == ["T=0, K=1", "T=1, K=3"]
    assert t["sampling_strategies"][0]["same_as_first"] == 1.0
    assert 0.0 <= t["sampling_strategies"][1]["same_as_first"] <= 1.0
    assert [(r["predictor"], r["examples"]) for r in t["data_volume"]] == [
        ("student", 8), ("baseline", 8), ("student", 16), ("baseline", 16)]
    # the baseline learns from the rows the student trains on: the first n, less its 10% for validation
    from helpers.train import split

    texts = [r["messages"][0]["content"] for r in adv.distillation_rows(world["service"], True, world["rows"])]
    assert world["baseline_fits"] == [split(texts[:n], 0.1, 0)[0] for n in (8, 16)]
    assert [len(fit) for fit in world["baseline_fits"]] == [7, 14]
    grid = t["hyperparameter_grid"]
    assert [r["default"] for r in grid] == [False, True]  # local/tiny at 3e-3 is the recipe's default
    assert all(r["val_loss"] is not None and r["val_loss"] > 0 for r in grid)
    soft = t["soft_labels"]
    assert [r["targets"] for r in soft] == ["hard", "majority", "soft"]
    assert soft[0]["mean_entropy"] == 0.0 and soft[2]["rows"] >= soft[2]["queries"]


def test_second_call_reads_the_cache_and_trains_nothing(world):
    # 2 strategies, 2 sizes, 2 grid points, soft; points with the same rows and settings are
    # trained once (hard = T=0 student; data volume at 16 = it too when the stand-in agrees with the pool)
    assert world["first_calls"] >= 4
    assert world["second_calls"] == 0
    assert world["second"] == world["first"]
    files = list((world["workdir"] / "advanced").glob("student-*.json"))
    assert len(files) == world["first_calls"]


def test_shared_points_are_trained_once(world):
    # the T=0, K=1 student of the sampling experiment is the soft experiment's "hard" one
    sampling, soft = world["first"]["sampling_strategies"], world["first"]["soft_labels"]
    assert sampling[0]["accuracy"] == soft[0]["accuracy"] and sampling[0]["agreement"] == soft[0]["agreement"]


def test_cache_recomputes_damaged_files_and_new_keys(world):
    calls = []

    def compute():
        calls.append(1)
        return {"value": len(calls)}

    assert adv.cached("probe", {"a": 1}, compute) == {"value": 1}
    assert adv.cached("probe", {"a": 1}, compute) == {"value": 1}
    assert adv.cached("probe", {"a": 2}, compute) == {"value": 2}
    path = next(p for p in adv.cache_dir().glob("probe-*.json") if json.loads(p.read_text())["key"]["a"] == 1)
    path.write_text("{not json")
    assert adv.cached("probe", {"a": 1}, compute) == {"value": 3}
    assert len(calls) == 3


def test_soft_label_rows_weights_sum_to_one_per_query(world):
    rows = [
        {"messages": conversation("Hola, ¿qué tal?", "es"), "teacher": {"votes": {"es": 3, "ot": 1, "fr": 1}}},
        {"messages": conversation("Guten Morgen", "de"), "teacher": {"votes": {"de": 5}}},
        {"messages": conversation("ok", "ot")},  # no votes: one row of weight 1
    ]
    soft = adv.soft_label_rows(rows)
    assert [(r["query"], r["messages"][-1]["content"], r["weight"]) for r in soft] == [
        (0, "es", 0.6), (0, "fr", 0.2), (0, "ot", 0.2), (1, "de", 1.0), (2, "ot", 1.0)]
    # and on real teacher samples: 3 votes at T=1 for 16 queries
    texts = [r["messages"][0]["content"] for r in world["rows"][:16]]
    sampled, _ = adv.teacher_data(world["service"], texts, 1.0, 3)
    totals = defaultdict(float)
    for r in adv.soft_label_rows(sampled):
        totals[r["query"]] += r["weight"]
        assert r["messages"][0]["content"] == texts[r["query"]]
    assert len(totals) == len(sampled) and all(math.isclose(t, 1.0) for t in totals.values())


def test_label_distributions_shows_the_least_sure_queries(world):
    rows = adv.label_distributions(world["service"], n=3, num_samples=3, n_queries=16, rows=world["rows"])
    assert len(rows) == 3 and set(rows[0]) == {"query", "greedy", "distribution"}


def test_plots_return_figures_with_the_expected_axes(world):
    t = world["first"]
    fig = adv.plot_data_volume(t["data_volume"])
    acc, agr = fig.axes
    assert acc.get_xscale() == "log" and acc.get_xlabel() == "teacher-labelled examples"
    assert {line.get_label() for line in acc.get_lines()} >= {"student", "baseline", "teacher (with prompt)"}
    assert "offline" in acc.get_title()

    fig = adv.plot_sampling(t["sampling_strategies"])
    assert len(fig.axes) == 2
    assert [tick.get_text() for tick in fig.axes[0].get_xticklabels()] == ["T=0, K=1", "T=1, K=3"]

    fig = adv.plot_hyperparameters(t["hyperparameter_grid"])
    heat = [ax for ax in fig.axes if ax.get_xlabel() == "learning rate"]
    assert len(heat) == 2 and len(fig.axes) == 4  # two heat maps and their colour bars
    assert heat[0].get_ylabel() == "student model"
    assert any(text.get_text() == "default" for text in heat[0].texts)
    fig.canvas.draw()  # tick labels are made when drawn
    accuracy_bar = [ax for ax in fig.axes if ax not in heat][1]  # the accuracy map's colour bar, like its cells
    assert all(t.get_text().endswith("%") for t in accuracy_bar.get_yticklabels() if t.get_text())
    assert any(t.get_text().endswith("%") for t in heat[1].texts)

    fig = adv.plot_prompt_ablation(t["prompt_ablation"])
    assert len(fig.axes) == 2  # prompts, and the teacher models (the missing one shows as an error)
    assert "full prompt" in [tick.get_text() for tick in fig.axes[0].get_yticklabels()]

    fig = adv.plot_soft_labels(t["soft_labels"])
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 6


def test_the_grid_plot_has_a_row_per_model_and_rank_when_both_vary():
    """Two models at two ranks: four rows, each cell its own setting's (none drawn over another's)."""
    table = [{"learning_rate": lr, "model": m, "rank": rank, "val_loss": 1.0 + i, "accuracy": i / 10,
              "default": (m, rank, lr) == ("big", 32, 1e-4), "student": False, "eval_set": "dev", "backend": "tinker"}
             for i, (m, rank, lr) in enumerate((m, rank, lr) for m in ("big", "small") for rank in (8, 32)
                                               for lr in (1e-4, 3e-4))]
    fig = adv.plot_hyperparameters(table)
    loss = [ax for ax in fig.axes if ax.get_xlabel() == "learning rate"][0]
    fig.canvas.draw()
    assert [t.get_text() for t in loss.get_yticklabels()] == ["big, rank 8", "big, rank 32", "small, rank 8", "small, rank 32"]
    assert loss.get_ylabel() == "student model, LoRA rank"
    assert sorted(float(t.get_text()) for t in loss.texts if t.get_text() not in ("default", "used here")) == \
        [1.0 + i for i in range(8)]
    assert [t.get_text() for t in loss.texts].count("default") == 1


def test_counts_of_rows_must_be_whole_and_positive(world):
    for bad in (0, -100, 1e3, True):
        with pytest.raises(DataError, match=r"setting: sizes takes whole numbers of rows >= 1 .*got"):
            adv.data_volume(world["service"], sizes=[bad], rows=world["rows"], progress=False)
    with pytest.raises(DataError, match=r"setting: n_queries takes whole numbers"):
        adv.sampling_strategies(world["service"], n_queries=-1, rows=world["rows"], progress=False)
    with pytest.raises(DataError, match=r"setting: n_examples takes whole numbers"):
        adv.hyperparameter_grid(world["service"], n_examples=0.5, rows=world["rows"], progress=False)


def test_finished_teacher_data_is_read_back_asking_nothing(world, monkeypatch):
    """Asked again, failed requests would change the data under students trained on it: a
    finished file is read back as it is, without calling generate."""
    texts = [r["messages"][0]["content"] for r in world["rows"][:16]]
    first = adv.teacher_data(world["service"], texts, 1.0, 3)
    monkeypatch.setattr(adv, "generate", lambda *a, **k: pytest.fail("generate was called for finished data"))
    assert adv.teacher_data(world["service"], texts, 1.0, 3) == first


def test_plots_refuse_the_wrong_table(world):
    with pytest.raises(ValueError, match="column"):
        adv.plot_hyperparameters(world["first"]["data_volume"])
    with pytest.raises(ValueError, match="no rows"):
        adv.plot_sampling([])


def test_student_config_and_show(world):
    service = world["service"]
    quick = adv.student_config(service, quick=True)
    assert (quick.base_model, quick.epochs, quick.batch_size, quick.val_fraction) == ("local/tiny", 2, 8, 0.1)
    assert adv.student_config(service, quick=False).epochs == 3
    assert adv.resolve_quick(service, None) is True
    text = adv.show(world["first"]["data_volume"], ["predictor", "examples", "accuracy"]).data
    assert text.splitlines()[0] == "| predictor | examples | accuracy |" and len(text.splitlines()) == 6


def test_greedy_labels_of_the_course_data_are_not_asked_for_again(tmp_path, monkeypatch):
    """The sampling and soft-label experiments' T=0, K=1 labels are what notebook 02 already
    asked for (greedy, one sample, same teacher and prompt): on the course's data they are taken
    from its rows, and the teacher is asked only for the sampled strategies (on Tinker, a
    thousand long-prompt requests saved). Labelled another way, the course's data is not used."""
    from helpers import course

    monkeypatch.setenv("PD_WORKDIR", str(tmp_path))
    monkeypatch.setattr(course, "QUICK_QUERIES", 40)
    service = connect("local")
    asked = []
    real = adv.teacher_data
    monkeypatch.setattr(adv, "teacher_data", lambda s, texts, t, k, *a: asked.append((t, k)) or real(s, texts, t, k, *a))
    pool = adv.distillation_rows(service, True)[:16]
    rows = adv.strategy_rows(service, True, None, pool, 0.0, 1)
    assert rows == pool and asked == []
    # the same labels the teacher would give again at T=0
    assert [r["messages"] for r in real(service, [adv._text(r) for r in pool], 0.0, 1)[0]] == [r["messages"] for r in pool]
    adv.strategy_rows(service, True, None, pool, 1.0, 3)
    assert asked == [(1.0, 3)]
    # notebook 05's look at the soft labels asks for the samples alone too (it once asked
    # for every greedy label again: a thousand more long-prompt requests on Tinker)
    shown = adv.label_distributions(service, True, n=3, num_samples=3, n_queries=16)
    assert asked == [(1.0, 3), (1.0, 3)] and {r["greedy"] for r in shown} <= set(LABELS)
    adv.strategy_rows(service, True, pool, pool, 0.0, 1)  # rows given by the caller: their labels may be anything
    assert asked == [(1.0, 3), (1.0, 3), (0.0, 1)]
    summary = course.run_dir(service, True) / "distill.jsonl.summary.json"
    record = json.loads(summary.read_text())
    record["config"]["temperature"] = 0.7
    summary.write_text(json.dumps(record))
    adv.strategy_rows(service, True, None, pool, 0.0, 1)
    assert asked[-1] == (0.0, 1)


def test_compare_says_whether_each_row_is_apart_from_the_first():
    """The sentence a notebook prints under an experiment's table: the difference, whether the
    intervals overlap, the share of answers like the first student's, and the offline note."""
    table = [{"strategy": "T=0", "accuracy": 0.448, "accuracy_low": 0.368, "accuracy_high": 0.515, "backend": "local"},
             {"strategy": "T=1", "accuracy": 0.417, "accuracy_low": 0.350, "accuracy_high": 0.490,
              "same_as_first": 0.748, "backend": "local"},
             {"strategy": "soft", "accuracy": 0.564, "accuracy_low": 0.520, "accuracy_high": 0.632, "backend": "local"},
             {"strategy": "broken", "accuracy": None, "backend": "local"}]
    lines = adv.compare(table, "strategy").splitlines()
    assert lines[0].startswith("T=1: accuracy 0.417 [0.350, 0.490] against T=0's 0.448 [0.368, 0.515]: -0.031")
    assert "intervals overlap" in lines[0] and lines[0].endswith("first student on 75% of dev queries")
    assert lines[1].startswith("soft: accuracy 0.564") and "+0.116, the intervals do not overlap" in lines[1]
    assert lines[2] == "broken: no accuracy" and lines[3] == f"({adv.OFFLINE_NOTE})"
    assert "offline" not in adv.compare([{**r, "backend": "tinker"} for r in table], "strategy")
    assert adv.compare([], "strategy") == "(no rows)"
