"""The Tinker path through the real ``tinker`` SDK, up to the network boundary.

Tinker cannot be reached from CI, so ``fake_tinker.FakeTinker`` answers the SDK's HTTP
requests on localhost with the local backend's models. These tests run the course's
commands with a key set, exactly as a learner with a Tinker account would, and check
that what crosses the wire (rendered prompts, datums, checkpoints, sampling sessions)
gives the same results as the local backend computes directly.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from fake_tinker import ALIASES, NO_CAPACITY, FakeTinker

from helpers.dataio import iter_jsonl, write_jsonl
from helpers.local.model import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
KEY = "tml-FAKE-SDK-PATH-KEY-must-not-leak"
END_OF_TURN = load_tokenizer().convert_tokens_to_ids("<|im_end|>")  # the fake serves the local tokenizer


def _rows(path: Path, every: int) -> list[dict]:
    return [row for _, row in iter_jsonl(path)][::every]


def _write(path: Path, rows: list[dict]) -> Path:
    write_jsonl(path, rows)
    return path


def test_the_whole_run_goes_through_the_real_sdk_and_labels_as_the_local_backend_does(tmp_path):
    """With server-side failures injected into generation (asample 3 and 20), evaluation
    (asample 70) and training's first step: each is retried, and nothing is lost."""
    queries = _write(tmp_path / "queries.jsonl", _rows(ROOT / "data" / "queries.jsonl", 300))
    gold = _write(tmp_path / "gold.jsonl", _rows(ROOT / "data" / "test_gold.jsonl", 20))
    out = tmp_path / "out"
    faults = {"asample": {3, 20, 70}, "forward_backward": {1}}
    with FakeTinker(tmp_path / "server", fail=faults) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "helpers", "run", "--out", str(out), "--backend", "tinker", "--quick",
             "--queries", str(queries), "--gold", str(gold)],
            cwd=ROOT, env=server.environment(tmp_path / "hf", KEY), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    calls = Counter(p.rsplit("/api/v1/", 1)[-1] for p in server.paths)
    for route in ("create_session", "create_model", "get_info", "forward_backward", "optim_step", "save_weights",
                  "save_weights_for_sampler", "create_sampling_session", "asample", "retrieve_future"):
        assert calls[route] > 0, f"the run never called {route}: {dict(calls)}"
    assert len(server.failed) == 4 and calls["create_model"] == 2  # training began again on a fresh client
    assert server.keys == {KEY}  # the SDK authenticated with the key ...
    written = [p for p in out.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".md", ".txt")]
    for text in [proc.stdout, proc.stderr, *(p.read_text(encoding="utf-8") for p in written)]:
        assert KEY not in text  # ... and it is in no output
    assert "DEPRECATED" not in proc.stderr  # no call the SDK is about to remove
    # the command told the server that its session (one service client for the whole run) is over
    assert [status for _, status in server.finished] == ["success"], server.finished
    # every request says where an answer ends (the fake, like a server whose own end-of-sequence
    # set lacks the template's end of turn, samples on to max_tokens when it is not told)
    assert server.stops and all(stop == [END_OF_TURN] for stop in server.stops), Counter(map(str, server.stops))
    for name in ("teacher", "base", "student", "baseline"):
        metrics = json.loads((out / f"metrics_{name}.json").read_text())
        assert metrics["n"] == len(_rows(gold, 1))
    # the report splits the agreement by the gold set's kinds of query, in report.json and report.md
    report = json.loads((out / "report.json").read_text())
    by_kind, kinds = report["agreement_by_kind"], Counter(r["kind"] for r in _rows(gold, 1))
    assert {kind: k["n"] for kind, k in by_kind.items()} == kinds
    shares = {kind: k["student"] for kind, k in by_kind.items()}
    assert sum(shares[kind] * n for kind, n in kinds.items()) == pytest.approx(report["agreement"] * sum(kinds.values()))
    assert all(f"| {kind} | {n} |" in (out / "report.md").read_text() for kind, n in kinds.items())
    # the teacher's labels that came back over the wire are the ones the local backend gives
    from helpers import connect
    from helpers.generate import generate
    from helpers.local import TEACHER_MODEL

    def labels(path: Path) -> dict[str, str]:
        return {r["messages"][0]["content"]: r["messages"][1]["content"] for r in _rows(path, 1)}

    teacher = connect("local").create_sampling_client(base_model=TEACHER_MODEL).result()
    generate(teacher, [r["text"] for r in _rows(queries, 1)], tmp_path / "local.jsonl", progress=False)
    remote, local = labels(out / "distill.jsonl"), labels(tmp_path / "local.jsonl")
    assert len(remote) == len(_rows(queries, 1)) and remote == local


TRAIN_SCRIPT = """
import json, sys
from helpers import connect
from helpers.render import conversation
from helpers.train import TrainConfig, train
out = sys.argv[1]
pairs = [("Guten Morgen zusammen", "de"), ("Buenos días a todos", "es"), ("Bonjour tout le monde", "fr"),
         ("Good morning everyone", "en"), ("Καλημέρα σε όλους", "el"), ("Доброе утро всем", "ru")]
rows = [{"messages": conversation(t, a)} for t, a in pairs * 4]
cfg = TrainConfig(base_model="local/tiny", epochs=2, batch_size=4, val_fraction=0.25, warmup_steps=0,
                  save_every=2, val_samples=6)
local = train(connect("local", store=out + "/local_store"), rows, cfg, out_dir=out + "/local")

class Stop(Exception):
    pass

def stop_at_3(info):
    if info.get("kind") == "step" and info["step"] == 3:
        raise Stop()

service = connect("tinker")
if sys.argv[2] == "stop":
    try:
        train(service, rows, cfg, out_dir=out + "/remote", callbacks=[stop_at_3])
    except Stop:
        pass
events = []
remote = train(service, rows, cfg, out_dir=out + "/remote", callbacks=[events.append])  # a stopped run resumes
sampler = service.create_sampling_client(model_path=remote.sampler_path).result()
print(json.dumps({"local": local.history, "remote": remote.history, "local_val": local.validation,
                  "remote_val": remote.validation, "sampler_path": remote.sampler_path,
                  "sampler_model": sampler.get_base_model(),
                  "restarts": [e["step"] for e in events if e["kind"] == "restart"]}))
"""


def _train_both(tmp_path: Path, mode: str, fail=None) -> tuple[dict, Counter]:
    script = tmp_path / "train_both.py"
    script.write_text(TRAIN_SCRIPT)
    with FakeTinker(tmp_path / "server", fail=fail) as server:
        proc = subprocess.run([sys.executable, str(script), str(tmp_path), mode], cwd=ROOT,
                              env=server.environment(tmp_path / "hf", KEY), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), Counter(p.rsplit("/api/v1/", 1)[-1] for p in server.paths)


def _same_steps(result: dict) -> None:
    loss = [round(h["loss"], 5) for h in result["local"]]
    assert [h["step"] for h in result["remote"]] == list(range(1, len(loss) + 1))
    assert [round(h["loss"], 5) for h in result["remote"]] == loss  # the same datums, the same steps
    assert result["remote_val"][-1]["val_accuracy"] == result["local_val"][-1]["val_accuracy"]
    assert abs(result["remote_val"][-1]["val_loss"] - result["local_val"][-1]["val_loss"]) < 1e-4


def test_training_over_the_wire_resumes_and_matches_the_local_backend_step_for_step(tmp_path):
    result, calls = _train_both(tmp_path, "stop")
    _same_steps(result)
    assert result["sampler_path"].startswith("tinker://")
    assert result["sampler_model"] == "local/tiny"
    assert calls["load_weights"] == 1 and result["restarts"] == []  # the resume


def test_a_step_that_fails_on_the_server_after_doing_its_work_sends_training_back_to_a_checkpoint(tmp_path):
    """The 5th forward_backward (step 5) runs on the server but its future fails: the run goes
    back to the step-4 checkpoint over the wire and still takes the local backend's steps."""
    result, calls = _train_both(tmp_path, "plain", fail={"forward_backward": {5}})
    assert result["restarts"] == [4] and calls["load_weights"] == 1
    _same_steps(result)


def test_a_final_save_that_fails_after_saving_is_asked_again_under_a_new_name(tmp_path):
    """The student's final weights are saved on the server but the save's future fails (the 2nd
    save_weights_for_sampler; the 1st is validation's snapshot). The name "final" is taken now,
    so the retry saves as "final-1", and the run ends with a sampler path that works."""
    result, calls = _train_both(tmp_path, "plain", fail={"save_weights_for_sampler": {2}})
    assert calls["save_weights_for_sampler"] == 3
    assert result["sampler_path"].endswith("/sampler_weights/final-1") and result["sampler_model"] == "local/tiny"
    _same_steps(result)


def _execute(name: str, env: dict, out: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                           str(ROOT / "notebooks" / f"{name}.ipynb"), "--output-dir", str(out)],
                          cwd=ROOT / "notebooks", env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{name}: {proc.stderr[-3000:]}"
    assert KEY not in proc.stdout + proc.stderr
    return (out / f"{name}.ipynb").read_text(encoding="utf-8")


def test_notebooks_00_to_04_run_with_a_key_through_the_real_sdk(tmp_path):
    """The notebooks' Tinker branch, headless, with a key and PD_QUICK=1 (a learner's cheap
    first run): every notebook runs through the real SDK, writes only to the Tinker folder of
    the work folder (so an offline run's files are never taken for Tinker's, nor the other
    way round), and the key is in no output. (Notebook 05 would train eleven students here, three
    minutes; its experiments run at their tiniest in the next test.)"""
    workdir = tmp_path / "wd"
    with FakeTinker(tmp_path / "server") as server:
        env = {**server.environment(tmp_path / "hf", KEY), "PD_WORKDIR": str(workdir), "PD_QUICK": "1"}
        run = {name: _execute(name, env, tmp_path / "nb")
               for name in ("00_setup", "01_teacher_prompt", "02_generate_data", "03_train_student", "04_evaluate")}
    assert all(KEY not in text for text in run.values())
    assert sorted(p.name for p in workdir.iterdir()) == ["tinker-quick"]
    assert "backend: tinker (because TINKER_API_KEY is set)" in run["00_setup"]
    assert "Tinker answered, the key works" in run["00_setup"]
    assert "Tinker mode" in run["01_teacher_prompt"] and "teacher (Qwen/Qwen3-30B-A3B) accuracy on dev" in run["01_teacher_prompt"]
    summary = json.loads((workdir / "tinker-quick" / "distill.jsonl.summary.json").read_text())
    assert summary["teacher"] == "Qwen/Qwen3-30B-A3B" and summary["rows"] > 1000
    # notebook 02 counted, before sending any, the requests and prompt tokens its run then sent
    ahead = re.search(r"([\d,]+) requests to Qwen/Qwen3-30B-A3B \(0 of [\d,]+ distinct queries already answered\): "
                      r"([\d,]+) prompt tokens", run["02_generate_data"])
    requests, tokens = (int(ahead[i].replace(",", "")) for i in (1, 2))
    assert requests == summary["labelled"] == summary["distinct"]
    assert tokens == pytest.approx(summary["prompt_tokens_per_query"] * requests, abs=0.05 * requests)
    checkpoint = json.loads((workdir / "tinker-quick" / "student" / "checkpoint.json").read_text())
    assert checkpoint["sampler_path"].startswith("tinker://") and checkpoint["config"]["epochs"] == 1
    assert "615 gold queries" in run["04_evaluate"]
    calls = Counter(p.rsplit("/api/v1/", 1)[-1] for p in server.paths)
    assert calls["create_model"] == 1 and calls["forward_backward"] > 1 and calls["asample"] > 3000


ADVANCED_SCRIPT = """
import json, sys, warnings
warnings.simplefilter("error", FutureWarning)  # no deprecated SDK call
from helpers import advanced as adv
from helpers import connect
from helpers.dataio import read_gold, read_queries
from helpers.prompt import DEFAULT_PROMPT, SHORT_PROMPT
from helpers.render import conversation
service = connect()
pool = read_queries("data/queries.jsonl")[::300][:24]
rows = [{"messages": conversation(q["text"], q["label"])} for q in pool]
gold = read_gold("data/dev_gold.jsonl")[::50]
small = {"epochs": 1, "batch_size": 8, "warmup_steps": 0, "val_samples": 2}
tables = {
    "prompt_ablation": adv.prompt_ablation(service, False, prompts={"full prompt": DEFAULT_PROMPT,
                                           "short prompt": SHORT_PROMPT}, gold=gold, progress=False),
    "sampling_strategies": adv.sampling_strategies(service, strategies=[(0.0, 1), (1.0, 3)], n_queries=16, rows=rows,
                                                   gold=gold, train_overrides=small, progress=False),
    "hyperparameter_grid": adv.hyperparameter_grid(service, learning_rates=[1e-3], ranks=[8, 32], n_examples=16,
                                                   rows=rows, gold=gold, train_overrides=small, progress=False),
}
figures = (adv.plot_prompt_ablation(tables["prompt_ablation"]), adv.plot_sampling(tables["sampling_strategies"]),
           adv.plot_hyperparameters(tables["hyperparameter_grid"]))
titles = [ax.get_title() for fig in figures for ax in fig.axes]
print(json.dumps({"tables": tables, "titles": titles}))
"""


def test_the_advanced_experiments_run_on_tinker_through_the_real_sdk(tmp_path):
    """Notebook 05's Tinker branch at its tiniest: the other teachers the server lists, the
    LoRA-rank grid, sampling at T=1 with K votes, and the plots of Tinker tables."""
    script = tmp_path / "advanced.py"
    script.write_text(ADVANCED_SCRIPT)
    base = "Qwen/Qwen3-8B-Base"  # a base model the server lists: never asked by default (no chat turn)
    with FakeTinker(tmp_path / "server", aliases={**ALIASES, base: ALIASES["Qwen/Qwen3-30B-A3B"]}) as server:
        env = {**server.environment(tmp_path / "hf", KEY), "PD_WORKDIR": str(tmp_path / "wd")}
        proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert KEY not in proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    tables = result["tables"]
    assert all(row["backend"] == "tinker" for table in tables.values() for row in table)
    ablation = {(r["teacher"], r["prompt"]): r for r in tables["prompt_ablation"]}
    assert base in server.model_names() and base not in server.sampled and not any(t == base for t, _ in ablation)
    others = [name for name in server.model_names() if name not in ("Qwen/Qwen3-30B-A3B", base)]  # not NO_CAPACITY,
    # the listed model the server says it cannot sample: it is never asked
    assert NO_CAPACITY not in server.sampled and NO_CAPACITY not in others
    assert set(ablation) == {("Qwen/Qwen3-30B-A3B", "full prompt"), ("Qwen/Qwen3-30B-A3B", "short prompt"),
                             *((name, "full prompt") for name in others)}
    assert ablation["Qwen/Qwen3-30B-A3B", "full prompt"]["accuracy"] >= 0.9
    # a listed model that answers is scored; one that cannot take the prompt (the server states
    # the tiny models' context, 512 tokens) is an error row, and is never asked
    assert ablation["local/policy-teacher", "full prompt"]["accuracy"] >= 0.9
    broken = [name for name in others if ablation[name, "full prompt"]["error"]]
    assert broken and all(re.search(r"the prompt \(\d+ tokens\) and a 256-token answer do not fit .* context of 512 tokens",
                                    ablation[name, "full prompt"]["error"]) for name in broken)
    assert not any(name in server.sampled for name in broken), server.sampled
    assert [r["strategy"] for r in tables["sampling_strategies"]] == ["T=0, K=1", "T=1, K=3"]
    grid = tables["hyperparameter_grid"]
    assert [(r["rank"], r["model"]) for r in grid] == [(8, "Qwen/Qwen3-30B-A3B"), (32, "Qwen/Qwen3-30B-A3B")]
    assert sorted(set(server.ranks)) == [8, 32]  # the rank reached the server
    assert result["titles"] and not any("offline" in t for t in result["titles"])  # Tinker's pictures are not labelled offline


def test_a_refused_key_stops_with_one_line_naming_the_setting(tmp_path):
    """Tinker answers a wrong or revoked key with a 401: connect() asks once, and every command
    stops at once with exit code 2 and one line naming TINKER_API_KEY, never the key; notebook
    00's connection cell shows the same line."""
    wrong = "tml-WRONG-KEY-typed-by-hand-must-not-leak"
    with FakeTinker(tmp_path / "server", key=KEY) as server:
        env = server.environment(tmp_path / "hf", wrong)
        runs = [subprocess.run([sys.executable, "-m", "helpers", *args], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=120)
                for args in (["generate", "--queries", "data/dev_gold.jsonl", "--out", str(tmp_path / "d.jsonl"),
                              "--backend", "tinker"],
                             ["run", "--out", str(tmp_path / "run"), "--backend", "tinker", "--quick"])]
        setup = _execute("00_setup", env, tmp_path / "nb")  # the notebook says so in its connection cell
    assert "cannot use this backend: Tinker at" in setup and "refused the API key in TINKER_API_KEY" in setup
    assert wrong not in setup
    for proc in runs:
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "refused the API key in TINKER_API_KEY (401)" in lines[0], proc.stderr[-2000:]
        assert wrong not in proc.stdout + proc.stderr
    assert server.keys == {wrong} and not (tmp_path / "d.jsonl").exists()


def _use_in_this_process(server: FakeTinker, tmp_path: Path, monkeypatch) -> None:
    """Point this process's environment at ``server`` as Tinker, with the key."""
    import os

    for name in [n for n in os.environ if "proxy" in n.lower() or n == "PD_BACKEND"]:
        monkeypatch.delenv(name)
    for name, value in server.environment(tmp_path / "hf", KEY).items():
        monkeypatch.setenv(name, value)


CONTEXT_SCRIPT = """
import json, sys
from helpers import connect
from helpers.dataio import DataError
from helpers.evaluate import predict
from helpers.render import conversation
from helpers.train import TrainConfig, train

long = "Das Wetter ist heute schön und wir gehen spazieren. " * 100  # far over local/tiny's 512 tokens
service = connect("tinker")
preds = predict("base", ["Good morning!", long, "Guten Morgen"], service, progress=False, base_model="local/tiny")
rows = [{"messages": conversation("Guten Morgen zusammen", "de")}] * 4 + [{"messages": conversation(long, "de")}]
config = TrainConfig(base_model="local/tiny", epochs=1, batch_size=4, val_fraction=0, warmup_steps=0)
try:
    train(service, rows, config, out_dir=sys.argv[1])
    stopped = None
except DataError as e:
    stopped = str(e)
print(json.dumps({"raw": [p.raw for p in preds], "labels": [p.label for p in preds], "stopped": stopped}))
"""


def test_a_query_or_row_over_the_context_the_server_states_is_never_sent(tmp_path):
    """Tinker states each model's context (``max_context_length``) and refuses a longer prompt.
    Evaluation does not send a query over it: that query counts as unparsed and the others are
    answered (before, the server's refusal stopped the evaluation). Training stops with one
    line naming the example before its first step."""
    script = tmp_path / "context.py"
    script.write_text(CONTEXT_SCRIPT)
    with FakeTinker(tmp_path / "server") as server:
        proc = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], cwd=ROOT,
                              env=server.environment(tmp_path / "hf", KEY), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    raw = result["raw"]
    assert result["labels"][1] is None and raw[1].startswith("(not asked: ") and "context of 512" in raw[1]
    assert not any(r.startswith("(not asked") for r in raw[0::2])
    assert server.sampled == {"local/tiny": 2}  # the long one was never sent
    assert "1 of 3 queries (the first: number 2) do not fit the model's context of 512 tokens" in proc.stderr
    assert re.fullmatch(r"training data: example 5: \d+ tokens, more than local/tiny's context of 512; "
                        r"shorten or drop it", result["stopped"] or "")
    assert not any(p.endswith("/forward_backward") for p in server.paths)
    assert not (tmp_path / "run" / "progress.json").exists()


@pytest.mark.parametrize("ending, status, code", [(KeyboardInterrupt, "interrupted", 130),
                                                  (RuntimeError("the run broke"), "errored", 2),
                                                  (None, "success", 0)])
def test_each_command_tells_the_server_how_its_session_ended(tmp_path, monkeypatch, capsys, ending, status, code):
    """The SDK's ServiceClient.close: the server sees a finished session, not one whose
    heartbeat stopped; a command that opened no session sends nothing."""
    from helpers import cli, train
    from helpers.render import conversation

    def opens_a_session_then_ends(service, rows, config, out_dir=None, **kwargs):
        service.create_sampling_client(base_model="Qwen/Qwen3-30B-A3B")  # the session starts here
        if ending is not None:
            raise ending
        return train.TrainResult(history=[], validation=[], checkpoints=[], sampler_path=None)

    chat = _write(tmp_path / "chat.jsonl", [{"messages": conversation("Guten Morgen zusammen", "de")}] * 4)
    with FakeTinker(tmp_path / "server") as server:
        _use_in_this_process(server, tmp_path, monkeypatch)
        monkeypatch.setattr(train, "train", opens_a_session_then_ends)
        assert cli.main(["train", "--data", str(chat), "--out", str(tmp_path / "run")]) == code
        sessions = [p.rsplit("/api/v1/", 1)[-1] for p in server.paths].count("create_session")
        assert sessions == 1 and [s for _, s in server.finished] == [status], server.finished
        # no session opened (bad input stops the command before it connects): nothing to finish
        assert cli.main(["train", "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "r2")]) == 2
        assert len(server.finished) == 1
    assert KEY not in "".join(capsys.readouterr())


EXIT_SCRIPT = """
import sys
from helpers import connect

connect("tinker").create_sampling_client(base_model="Qwen/Qwen3-30B-A3B")  # the session starts here
if sys.argv[1] == "errored":
    raise RuntimeError("the learner's script broke")
if sys.argv[1] == "interrupted":
    raise KeyboardInterrupt
"""


def test_a_session_still_open_when_the_process_exits_is_finished_with_how_it_ended(tmp_path):
    """A notebook's kernel or a learner's own script calls connect() and never finish_sessions():
    at exit the session is finished all the same (success, or the script's uncaught error or
    Ctrl-C), so the server does not wait for a heartbeat that stopped."""
    script = tmp_path / "exits.py"
    script.write_text(EXIT_SCRIPT)
    with FakeTinker(tmp_path / "server") as server:
        env = server.environment(tmp_path / "hf", KEY)
        for ending in ("success", "errored", "interrupted"):
            proc = subprocess.run([sys.executable, str(script), ending], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=120)
            assert (proc.returncode == 0) == (ending == "success"), proc.stderr[-2000:]
            assert server.finished and server.finished[-1][1] == ending, (ending, server.finished)
        # at an interactive prompt, an error shown earlier (1/0 typed at >>>) is not how the session ended
        proc = subprocess.run([sys.executable, "-i", str(script), "success"], cwd=ROOT, env=env, input="1/0\n",
                              capture_output=True, text=True, timeout=120)
        assert "ZeroDivisionError" in proc.stderr and server.finished[-1][1] == "success", server.finished
        assert len(server.finished) == 4


class KeyQuotingServer(FakeTinker):
    """Refuses every sampling request with a text that quotes the API key (a 400)."""

    def handle(self, path, body, content_type):
        if path.endswith("/asample"):
            raise ValueError(f"request refused; credentials seen: x-api-key={KEY}")
        return super().handle(path, body, content_type)


def test_the_sdks_own_log_of_a_failed_request_never_shows_the_key(tmp_path):
    """The SDK logs a non-retryable failure's text itself (tinker.lib.retry_handler); with a
    server quoting the key in it, that line reaches stderr redacted, as the rejects file does."""
    queries = _write(tmp_path / "q.jsonl", _rows(ROOT / "data" / "dev_gold.jsonl", 100))
    with KeyQuotingServer(tmp_path / "server") as server:
        env = server.environment(tmp_path / "hf", KEY)
        runs = [subprocess.run([sys.executable, "-m", "helpers", *args], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=300)
                for args in (["generate", "--queries", str(queries), "--out", str(tmp_path / "d.jsonl"), "--no-progress"],
                             ["evaluate", "--data", str(queries), "--predictor", "teacher", "--out", str(tmp_path / "ev"),
                              "--no-progress"])]
    # every query refused: generate says the first reason on its own line, not only "see the rejects file"
    assert runs[0].returncode == 1
    assert [line for line in runs[0].stderr.splitlines() if line.startswith("generate: no rows written; every query "
            "was rejected, the first with: ") and "x-api-key=***" in line], runs[0].stderr[-2000:]
    for proc in runs:
        said = proc.stdout + proc.stderr
        assert "x-api-key=***" in proc.stderr and "Request failed with non-retryable error" in proc.stderr, said[-2000:]
        assert KEY not in said and KEY[:12] not in said, said[-2000:]
    for path in [p for p in tmp_path.rglob("*") if p.is_file() and "server" not in p.parts and "hf" not in p.parts]:
        assert KEY[:12] not in path.read_text(encoding="utf-8", errors="replace"), path


def test_an_answer_length_over_the_context_the_server_states_is_refused_before_asking(tmp_path):
    """generate checks the prompt and --max-tokens against the context the server states for
    the teacher, as evaluate and train do: one line naming the setting, no request sent."""
    queries = _write(tmp_path / "q.jsonl", _rows(ROOT / "data" / "dev_gold.jsonl", 100))
    (tmp_path / "short.txt").write_text("Answer with the language code of the text.\n", encoding="utf-8")
    with FakeTinker(tmp_path / "server") as server:
        env = server.environment(tmp_path / "hf", KEY)
        proc = subprocess.run([sys.executable, "-m", "helpers", "generate", "--queries", str(queries), "--out",
                               str(tmp_path / "out" / "d.jsonl"), "--teacher", "local/tiny", "--prompt-file",
                               str(tmp_path / "short.txt"), "--max-tokens", "100000", "--no-progress"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("error: setting: max_tokens: 100,000 tokens for the answer") and \
        "local/tiny's context of 512" in lines[0]
    assert not server.sampled and not (tmp_path / "out").exists()


def test_estimates_sample_and_train_nothing_on_tinker(tmp_path):
    """generate --estimate and run --estimate open a session to read the tokenizers, as their
    help says, and send no sampling or training request and write nothing."""
    queries = _write(tmp_path / "q.jsonl", _rows(ROOT / "data" / "dev_gold.jsonl", 20))
    with FakeTinker(tmp_path / "server") as server:
        env = server.environment(tmp_path / "hf", KEY)
        runs = [subprocess.run([sys.executable, "-m", "helpers", *args], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=300)
                for args in (["generate", "--queries", str(queries), "--out", str(tmp_path / "out" / "d.jsonl"),
                              "--estimate"],
                             ["run", "--out", str(tmp_path / "run"), "--queries", str(queries), "--estimate"])]
    for proc in runs:
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert "requests" in runs[0].stdout and "requests" in runs[1].stdout
    assert not server.sampled
    assert not [p for p in server.paths if p.endswith(("forward_backward", "optim_step", "asample"))], server.paths
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


def test_generate_never_sends_a_query_over_the_context_the_server_states(tmp_path):
    """A query whose request cannot fit the teacher's stated context is rejected without being
    sent ('not asked: ...'), and the others are labelled; on Tinker it used to be sent and refused."""
    long = "Das Wetter ist heute schön und wir gehen spazieren. " * 100  # far over local/tiny's 512 tokens
    queries = tmp_path / "q.jsonl"
    write_jsonl(queries, [{"text": t} for t in ("Guten Morgen zusammen", long, "Buenos días a todos")])
    (tmp_path / "short.txt").write_text("Answer with the language code of the text.\n", encoding="utf-8")
    with FakeTinker(tmp_path / "server") as server:
        env = server.environment(tmp_path / "hf", KEY)
        proc = subprocess.run([sys.executable, "-m", "helpers", "generate", "--queries", str(queries), "--out",
                               str(tmp_path / "d.jsonl"), "--teacher", "local/tiny", "--prompt-file",
                               str(tmp_path / "short.txt"), "--max-tokens", "8", "--no-progress"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]  # the tiny model's answers may all be unparsed
    assert server.sampled.get("local/tiny") == 2, server.sampled
    rejects = [row for _, row in iter_jsonl(tmp_path / "d.jsonl.rejects.jsonl")]
    refused = [r for r in rejects if r["reason"] == "error"]
    assert len(refused) == 1 and refused[0]["query"] == long and refused[0]["error"].startswith("ValueError: not asked: ")
    assert "do not fit local/tiny's context of 512" in refused[0]["error"]


def test_k_votes_on_tinker_are_asked_without_the_seed_that_makes_its_server_repeat_one_sample(tmp_path):
    """Tinker's server answers a seeded request for K samples with copies of one sample
    (thinking-machines-lab/tinker-feedback#79; the fake server does the same): K votes are
    asked there without a seed, so they are real votes, and greedy labels keep theirs."""
    queries = tmp_path / "q.jsonl"
    rows = [row for _, row in iter_jsonl(ROOT / "data" / "dev_gold.jsonl")]
    write_jsonl(queries, [{"text": r["text"]} for r in rows if r["kind"] in ("edge:short", "edge:mixed", "other")][:24])
    with FakeTinker(tmp_path / "server") as server:
        env = server.environment(tmp_path / "hf", KEY)
        for name, extra in (("greedy", []), ("votes", ["--temperature", "1", "--samples", "5", "--min-agreement", "0"])):
            proc = subprocess.run([sys.executable, "-m", "helpers", "generate", "--queries", str(queries), "--out",
                                   str(tmp_path / f"{name}.jsonl"), "--no-progress", *extra],
                                  cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr[-2000:]
    assert {seed is not None for seed, k in server.seeds if k == 1} == {True}
    assert {seed for seed, k in server.seeds if k == 5} == {None} and sum(k == 5 for _, k in server.seeds) == 24
    confidences = [row["teacher"]["confidence"] for _, row in iter_jsonl(tmp_path / "votes.jsonl")]
    assert len(confidences) == 24 and min(confidences) < 1.0, confidences  # the samples differ
