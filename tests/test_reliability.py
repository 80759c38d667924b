"""Reliability: training survives faults and SIGKILL, and an API key never leaks.

(Generation's SIGKILL and fault tests live in test_generate.py; bad input for every
command in test_cli.py; the unreachable-server test in test_local_backend.py.)
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from helpers import connect
from helpers.generate import TransientError
from helpers.local import LocalFuture
from helpers.plots import LiveLossPlot
from helpers.render import conversation
from helpers.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
FAKE_KEY = "tml-FAKE-0000-RELIABILITY-KEY-must-not-leak"
ROWS = [{"messages": conversation(t, a)} for t, a in [
    ("Guten Morgen zusammen", "de"), ("Buenos días a todos", "es"), ("Bonjour tout le monde", "fr"),
    ("Good morning everyone", "en"), ("Καλημέρα σε όλους", "el"), ("Доброе утро всем", "ru"),
    ("Günaydın herkese", "tr"), ("Chào buổi sáng mọi người", "vi"),
] * 4]


class Proxy:
    """``client`` with some of its methods replaced: ``Proxy(client, forward=my_forward)``."""

    def __init__(self, client, **methods):
        self._client = client
        self.__dict__.update(methods)

    def __getattr__(self, name):
        return getattr(self._client, name)


class FlakyTrainer:
    """Wraps a training client; a share of forward_backward/optim_step calls fail.

    With ``lost`` the failing call runs first and only its answer is lost, as when a
    connection drops after the server did the work: the case a blind retry gets wrong.
    """

    def __init__(self, client, rate: float, permanent: bool = False, seed: int = 0, lost: bool = False, rng=None):
        self.client, self.rate, self.permanent, self.lost = client, rate, permanent, lost
        self.rng = rng or random.Random(seed)
        self.failures = 0

    def _maybe_fail(self, call, *args, **kwargs):
        if self.rng.random() < self.rate:
            self.failures += 1
            error = RuntimeError("injected permanent failure") if self.permanent else TransientError("injected")
            if self.lost:
                call(*args, **kwargs)
            return LocalFuture.failed(error)
        return call(*args, **kwargs)

    def forward_backward(self, *a, **k):
        return self._maybe_fail(self.client.forward_backward, *a, **k)

    def optim_step(self, *a, **k):
        return self._maybe_fail(self.client.optim_step, *a, **k)

    def __getattr__(self, name):
        return getattr(self.client, name)


class FlakyService:
    """A local service whose training clients, new or restored, are all flaky alike."""

    def __init__(self, service, rate: float, seed: int = 0):
        self.service, self.rate, self.rng = service, rate, random.Random(seed)
        self.clients: list[FlakyTrainer] = []

    def _wrap(self, future):
        client = FlakyTrainer(future.result(), self.rate, lost=True, rng=self.rng)
        self.clients.append(client)
        return LocalFuture.completed(client)

    def create_lora_training_client(self, *a, **k):
        return self._wrap(self.service.create_lora_training_client(*a, **k))

    def create_training_client_from_state_with_optimizer(self, *a, **k):
        return self._wrap(self.service.create_training_client_from_state_with_optimizer(*a, **k))

    def __getattr__(self, name):
        return getattr(self.service, name)


CONFIG = TrainConfig(epochs=2, batch_size=4, val_fraction=0, warmup_steps=0, save_every=4)


def _weights(folder: Path) -> dict:
    info = json.loads((folder / "checkpoint.json").read_text())
    return torch.load(Path(info["sampler_path"][len("local://"):]) / "weights.pt")


def test_transient_failures_go_back_to_a_checkpoint_and_end_at_the_same_weights(tmp_path):
    """Failed steps whose work was done anyway (the answer lost on the way back) are not
    retried in place, behind the next step already queued: the run goes back to its last
    checkpoint and replays, and ends exactly where an unbroken run ends, validation included."""
    config = TrainConfig(epochs=2, batch_size=4, val_fraction=0.25, warmup_steps=0, save_every=4, eval_every=3, val_samples=4)
    plain = train(connect("local", store=tmp_path / "w0"), ROWS, config, out_dir=tmp_path / "plain")
    flaky = FlakyService(connect("local", store=tmp_path / "w1"), rate=0.1, seed=3)
    plot = LiveLossPlot(live=False)
    events = []
    result = train(flaky, ROWS, config, out_dir=tmp_path / "flaky", callbacks=[plot, events.append])
    restarts = [e["step"] for e in events if e["kind"] == "restart"]
    assert sum(c.failures for c in flaky.clients) >= 3 and len(restarts) >= 3
    assert 0 in restarts and any(s > 0 for s in restarts)  # from scratch, and from a checkpoint
    assert all(s % config.save_every == 0 for s in restarts)
    steps = list(range(1, len(plain.history) + 1))
    assert [h["step"] for h in result.history] == steps and [s["step"] for s in plot.steps] == steps
    assert [h["loss"] for h in result.history] == [h["loss"] for h in plain.history]
    assert result.validation == plain.validation and len(plain.validation) >= 3
    assert plot.validation == [{"kind": "validation", **v} for v in plain.validation]  # redone points dropped
    a, b = _weights(tmp_path / "plain"), _weights(tmp_path / "flaky")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_that_keeps_failing_in_the_same_place_gives_up(tmp_path):
    from helpers.train import RESTARTS

    flaky = FlakyService(connect("local", store=tmp_path / "w"), rate=1.0)
    events = []
    with pytest.raises(TransientError):
        train(flaky, ROWS, CONFIG, out_dir=tmp_path / "run", callbacks=[events.append])
    assert sum(e["kind"] == "restart" for e in events) == RESTARTS


def test_a_transient_failure_in_validation_is_asked_again_without_a_restart(tmp_path):
    config = TrainConfig(epochs=1, batch_size=4, val_fraction=0.25, warmup_steps=0, save_every=4, eval_every=3, val_samples=4)
    plain = train(connect("local", store=tmp_path / "w0"), ROWS, config)
    service = connect("local", store=tmp_path / "w1")
    client = service.create_lora_training_client(config.base_model, rank=config.rank, seed=config.seed).result()
    lost = {"left": 2}

    def forward(*args, **kwargs):  # the first two validation passes fail on the way back
        if lost["left"]:
            lost["left"] -= 1
            return LocalFuture.failed(TransientError("injected"))
        return client.forward(*args, **kwargs)

    events = []
    result = train(service, ROWS, config, training_client=Proxy(client, forward=forward), callbacks=[events.append])
    assert lost["left"] == 0 and not any(e["kind"] == "restart" for e in events)
    assert result.validation == plain.validation


def test_a_transient_failure_sampling_for_validation_or_saving_a_state_is_asked_again_in_place(tmp_path):
    """Neither changes the weights, and nothing is in flight when they run: a failed answer is
    asked again where it failed, never paid for by replaying steps from a checkpoint."""
    config = TrainConfig(epochs=2, batch_size=4, val_fraction=0.25, warmup_steps=0, save_every=4, eval_every=3,
                         val_samples=4)
    plain = train(connect("local", store=tmp_path / "w0"), ROWS, config, out_dir=tmp_path / "plain")
    client = connect("local", store=tmp_path / "w1").create_lora_training_client(
        config.base_model, rank=config.rank, seed=config.seed).result()
    lost = {"sample": 3, "save_state": 2}

    def flaky(owner, name):  # the first calls fail on the way back
        def call(*args, **kwargs):
            if lost[name]:
                lost[name] -= 1
                return LocalFuture.failed(TransientError("injected"))
            return getattr(owner, name)(*args, **kwargs)
        return call

    def sampler():
        real = client.save_weights_and_get_sampling_client()
        return LocalFuture.run(lambda: Proxy(real.result(), sample=flaky(real.result(), "sample")))

    events = []
    result = train(None, ROWS, config, out_dir=tmp_path / "run", callbacks=[events.append],
                   training_client=Proxy(client, save_state=flaky(client, "save_state"),
                                         save_weights_and_get_sampling_client=sampler))
    assert lost == {"sample": 0, "save_state": 0} and not any(e["kind"] == "restart" for e in events)
    assert result.validation == plain.validation and len(result.checkpoints) == len(plain.checkpoints)
    assert [step["loss"] for step in result.history] == [step["loss"] for step in plain.history]


def test_a_transient_failure_saving_the_final_weights_is_asked_again(tmp_path):
    service = connect("local", store=tmp_path / "w")
    client = service.create_lora_training_client(CONFIG.base_model, rank=CONFIG.rank, seed=CONFIG.seed).result()
    lost = {"save_weights_for_sampler": 2, "create_sampling_client": 2}
    calls = {name: 0 for name in lost}

    def flaky(name):  # the sampler saves fail on the way back, twice each
        def call(*args, **kwargs):
            calls[name] += 1
            if lost[name]:
                lost[name] -= 1
                return LocalFuture.failed(TransientError("injected"))
            return getattr(client, name)(*args, **kwargs)
        return call

    # validation is off, so the sampler saves and the client on them are the final ones
    config = replace(CONFIG, eval_every=0, val_fraction=0.0)
    result = train(service, ROWS, config, out_dir=tmp_path / "run",
                   training_client=Proxy(client, **{name: flaky(name) for name in lost}))
    assert lost == {name: 0 for name in lost} and calls == {name: 3 for name in lost}
    assert result.sampler_path and json.loads((tmp_path / "run" / "checkpoint.json").read_text())["sampler_path"] == result.sampler_path
    assert result.sampling_client is not None


def test_an_error_from_a_callback_stops_the_run_even_when_it_looks_transient(tmp_path):
    events = []

    def impatient(info):
        events.append(info)
        if info.get("step") == 3:
            raise TimeoutError("the notebook's own deadline")

    with pytest.raises(TimeoutError, match="own deadline"):
        train(connect("local", store=tmp_path / "w"), ROWS, CONFIG, out_dir=tmp_path / "run", callbacks=[impatient])
    assert not any(e["kind"] == "restart" for e in events) and events[-1]["step"] == 3


def test_a_transient_failure_without_a_checkpoint_on_a_given_client_stops_clearly(tmp_path):
    service = connect("local", store=tmp_path / "w")
    client = FlakyTrainer(service.create_lora_training_client("local/tiny", seed=0).result(), rate=1.0)
    with pytest.raises(RuntimeError, match="before any checkpoint; pass out_dir"):
        train(service, ROWS, CONFIG, training_client=client)


def test_a_transient_failure_after_a_checkpoint_on_a_client_given_without_a_service_stops_clearly(tmp_path):
    """Going back to a checkpoint needs a fresh client, opened by the service: given none, the
    run says so (it failed with an AttributeError on None)."""
    class After:  # the first ten calls pass (five steps, a checkpoint at step 4), the next fails
        draws = 0

        def random(self):
            self.draws += 1
            return 1.0 if self.draws <= 10 else 0.0

    service = connect("local", store=tmp_path / "w")
    client = FlakyTrainer(service.create_lora_training_client("local/tiny", seed=0).result(), rate=0.5, rng=After())
    with pytest.raises(RuntimeError, match=r"a step failed \(.*injected\) and, given no service, the run cannot open"):
        train(None, ROWS, CONFIG, out_dir=tmp_path / "run", training_client=client)
    assert json.loads((tmp_path / "run" / "progress.json").read_text())["step"] == 4


def test_a_run_resumes_only_its_own_data_and_client(tmp_path):
    first = train(connect("local", store=tmp_path / "w"), ROWS, CONFIG, out_dir=tmp_path / "run")
    total = len(first.history)
    # the same data: finished, nothing to do
    again = train(connect("local", store=tmp_path / "w"), ROWS, CONFIG, out_dir=tmp_path / "run")
    assert again.history == first.history and again.first_step == total  # reused, not trained again
    # one label changed in the middle (same count, same first and last row): a new run, not the old one
    changed = [dict(r) for r in ROWS]
    changed[len(ROWS) // 2] = {"messages": conversation(ROWS[len(ROWS) // 2]["messages"][0]["content"], "ot")}
    redo = train(connect("local", store=tmp_path / "w"), changed, CONFIG, out_dir=tmp_path / "run")
    assert len(redo.history) == total and redo.first_step == 0  # trained from step 1, not resumed nor reused
    # a client passed in starts from its own weights: no steps are skipped for another run's record
    service = connect("local", store=tmp_path / "w2")
    client = service.create_lora_training_client(CONFIG.base_model, seed=1).result()
    given = train(service, ROWS, CONFIG, out_dir=tmp_path / "run", training_client=client)
    assert len(given.history) == total and client.step == total


def test_same_run_says_whether_a_folder_holds_this_run_and_names_a_broken_record(tmp_path):
    from helpers.dataio import DataError
    from helpers.train import same_run

    run = tmp_path / "run"
    assert same_run(run, ROWS, CONFIG) is None  # nothing there yet
    train(connect("local", store=tmp_path / "w"), ROWS, CONFIG, out_dir=run)
    assert same_run(run, ROWS, CONFIG) is True
    assert same_run(run, ROWS[:-1], CONFIG) is False
    assert same_run(run, ROWS, replace(CONFIG, learning_rate=CONFIG.learning_rate / 2)) is False
    for content, says in (('{"step": 4, "hist', "malformed JSON"), ("[]", "not a training progress record")):
        (run / "progress.json").write_text(content)
        for call in (lambda: same_run(run, ROWS, CONFIG), lambda: train(connect("local", store=tmp_path / "w"), ROWS, CONFIG, out_dir=run)):
            with pytest.raises(DataError, match=f"progress.json.*{says}"):
                call()
        assert (run / "progress.json").read_text() == content  # kept for the user to look at
    (run / "progress.json").unlink()
    assert same_run(run, ROWS, CONFIG) is False  # a checkpoint.json with no record of what it was trained on


def test_permanent_failure_stops_clearly_and_keeps_checkpoints(tmp_path):
    service = connect("local", store=tmp_path / "w")
    inner = service.create_lora_training_client("local/tiny", seed=0).result()
    client = FlakyTrainer(inner, rate=0.0, permanent=True)
    seen = []

    def break_after_checkpoint(info):
        seen.append(info)
        if info.get("step") == 5:
            client.rate = 1.0

    with pytest.raises(RuntimeError, match="injected permanent failure"):
        train(service, ROWS, CONFIG, out_dir=tmp_path / "run", training_client=client, callbacks=[break_after_checkpoint])
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert progress["step"] == 4 and len(progress["checkpoints"]) == 1


TRAIN_SCRIPT = """
import sys, json
from helpers import connect
from helpers.train import TrainConfig, train
rows = [json.loads(line) for line in open(sys.argv[1])]
out = sys.argv[2]
cfg = TrainConfig(epochs=3, batch_size=4, val_fraction=0, warmup_steps=0, save_every=2)
train(connect("local", store=out + "/weights"), rows, cfg, out_dir=out)
"""


def test_training_killed_with_sigkill_resumes_to_the_same_weights(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS))
    script = tmp_path / "t.py"
    script.write_text(TRAIN_SCRIPT)
    env = {**os.environ, "PD_BACKEND": "local"}

    def run(out, kill_at_step=None):
        proc = subprocess.Popen([sys.executable, str(script), str(data), str(out)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill_at_step is None:
            assert proc.wait(timeout=600) == 0
            return
        progress = out / "progress.json"
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            if progress.exists() and json.loads(progress.read_text())["step"] >= kill_at_step:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=60)

    run(tmp_path / "whole")
    for kill_at in (2, 10):
        out = tmp_path / f"killed{kill_at}"
        run(out, kill_at_step=kill_at)
        assert not (out / "checkpoint.json").exists() or kill_at >= 24
        run(out)
        a, b = _weights(tmp_path / "whole"), _weights(out)
        for k in a:
            assert torch.allclose(a[k], b[k], atol=1e-5), k
        assert not list(out.rglob("*.tmp"))  # no half-written file left behind


def test_api_key_never_leaks_into_outputs_logs_or_notebooks(tmp_path):
    """With a recognisable fake key set, run the command line and a notebook offline; grep everything."""
    env = {**os.environ, "TINKER_API_KEY": FAKE_KEY, "PD_BACKEND": "local", "TQDM_DISABLE": "1", "PD_WORKDIR": str(tmp_path / "wd")}
    gold = ROOT / "data" / "dev_gold.jsonl"
    small_q = tmp_path / "q.jsonl"
    small_q.write_text("".join(line + "\n" for line in (ROOT / "data" / "queries.jsonl").read_text().splitlines()[:40]))
    small_g = tmp_path / "g.jsonl"
    small_g.write_text("".join(line + "\n" for line in gold.read_text().splitlines()[:30]))
    logs = []
    for args in (["generate", "--queries", str(small_q), "--out", str(tmp_path / "d.jsonl")],
                 ["train", "--data", str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "s"), "--epochs", "1"],
                 ["evaluate", "--data", str(small_g), "--predictor", f"student:{tmp_path / 's'}", "--out", str(tmp_path / "e")],
                 ["run", "--out", str(tmp_path / "r"), "--queries", str(small_q), "--gold", str(small_g), "--quick"]):
        r = subprocess.run([sys.executable, "-m", "helpers", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr
        logs.append(r.stdout + r.stderr)
    nb = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                         str(ROOT / "notebooks" / "00_setup.ipynb"), "--output-dir", str(tmp_path / "nb")],
                        cwd=ROOT / "notebooks", env=env, capture_output=True, text=True, timeout=600)
    assert nb.returncode == 0, nb.stderr[-2000:]
    logs.append(nb.stdout + nb.stderr)
    for text in logs:
        assert FAKE_KEY not in text and FAKE_KEY[-12:] not in text
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert any(f.suffix == ".ipynb" for f in files) and any(f.name == "metrics.json" for f in files)
    for f in files:
        if f.name in ("q.jsonl", "g.jsonl"):
            continue
        content = f.read_bytes()
        assert FAKE_KEY.encode() not in content and FAKE_KEY[-12:].encode() not in content, f


def _stalling(call, stall_at: int, seconds: float):
    """``call`` whose ``stall_at``-th call answers only after ``seconds`` (a server gone quiet)."""
    import concurrent.futures
    import threading

    count = {"n": 0}

    def wrapped(*args, **kwargs):
        count["n"] += 1
        if count["n"] != stall_at:
            return call(*args, **kwargs)
        future = concurrent.futures.Future()
        result = call(*args, **kwargs).result()
        threading.Timer(seconds, future.set_result, args=(result,)).start()
        return LocalFuture(future)
    return wrapped


def _notices(err: str, what: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"{what}: no answer for")]


def test_a_stalled_training_step_and_evaluation_are_reported(monkeypatch, capsys, tmp_path):
    """Training and evaluation say so when the server goes quiet, as generation does
    (test_generate.py::test_a_stalled_teacher_is_reported_once_and_the_run_goes_on), each with
    what an interrupted run keeps, and go on when the answers come back."""
    import helpers.generate as gen
    from helpers.evaluate import predict_with_client

    monkeypatch.setattr(gen, "STALL_NOTICE_SECONDS", 1.0)
    service = connect("local", store=tmp_path / "w")
    client = service.create_lora_training_client(CONFIG.base_model, rank=CONFIG.rank, seed=CONFIG.seed).result()

    # the 6th forward_backward (step 6) answers after 3 s; the step-4 checkpoint is saved by then
    quiet = Proxy(client, forward_backward=_stalling(client.forward_backward, 6, 3.0))
    result = train(service, ROWS, CONFIG, out_dir=tmp_path / "run", training_client=quiet)
    assert len(result.history) == 16
    notices = _notices(capsys.readouterr().err, "training")
    assert notices and any("it resumes from its last checkpoint, step 4" in n for n in notices), notices

    sampler = result.sampling_client
    quiet_sampler = Proxy(sampler, sample=_stalling(sampler.sample, 3, 3.0))  # the 3rd query's answer comes after 3 s
    predictions = predict_with_client(quiet_sampler, ["Guten Morgen", "Bonjour", "Hello", "Hola", "Ciao", "Merhaba"],
                                      with_prompt=False, progress=False, concurrency=2)
    assert len(predictions) == 6
    notices = _notices(capsys.readouterr().err, "evaluation")
    assert notices and "so it starts again" in notices[0], notices


@pytest.mark.parametrize("stop_at", ["boundary_validation", "step_after_boundary", "last_step"])
def test_a_run_stopped_at_an_epoch_boundary_resumes_to_the_same_steps_validation_and_weights(tmp_path, stop_at):
    """Checkpoints and validation both fall on the end of the first epoch: a run stopped there
    (in that validation, just after it, or in the last epoch) resumes with each validation point
    once, the second epoch's batches, and the unbroken run's weights."""
    base = TrainConfig(epochs=2, batch_size=4, val_fraction=0.25, warmup_steps=0, val_samples=2)
    probe = train(connect("local", store=tmp_path / "p"), ROWS, replace(base, epochs=1))
    per_epoch = len(probe.history)
    config = replace(base, save_every=per_epoch, eval_every=per_epoch)
    whole = train(connect("local", store=tmp_path / "w0"), ROWS, config, out_dir=tmp_path / "whole")
    assert [v["step"] for v in whole.validation] == [per_epoch, 2 * per_epoch]

    def stop(info):
        if ((stop_at == "boundary_validation" and info["kind"] == "validation")
                or (stop_at == "step_after_boundary" and info.get("step") == per_epoch + 1 and info["kind"] == "step")
                or (stop_at == "last_step" and info.get("step") == 2 * per_epoch and info["kind"] == "step")):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(connect("local", store=tmp_path / "w1"), ROWS, config, out_dir=tmp_path / "run", callbacks=[stop])
    saved = json.loads((tmp_path / "run" / "progress.json").read_text()) if stop_at != "boundary_validation" else None
    if saved:
        assert saved["step"] == per_epoch and [v["step"] for v in saved["validation"]] == [per_epoch]
    resumed = train(connect("local", store=tmp_path / "w1"), ROWS, config, out_dir=tmp_path / "run")
    assert resumed.first_step == (0 if stop_at == "boundary_validation" else per_epoch)
    assert [h["step"] for h in resumed.history] == list(range(1, 2 * per_epoch + 1))
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in whole.history], rel=1e-4)
    assert [v["step"] for v in resumed.validation] == [per_epoch, 2 * per_epoch]
    assert [v["val_loss"] for v in resumed.validation] == pytest.approx([v["val_loss"] for v in whole.validation], rel=1e-4)
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "run")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_ctrl_c_stops_a_training_step_that_stalls_even_when_the_signal_lands_in_another_thread(
        tmp_path, ctrl_c_from_another_thread):
    """As generate's and evaluate's: a step whose answer never comes still gives way to Ctrl-C,
    with the note that says where the same call resumes."""
    client = connect("local", store=tmp_path / "w").create_lora_training_client(
        CONFIG.base_model, rank=CONFIG.rank, seed=CONFIG.seed).result()
    steps: list[LocalFuture] = []

    def forward_backward(*args, **kwargs):  # step 3's answer never comes, like a stalled server
        steps.append(client.forward_backward(*args, **kwargs) if len(steps) < 2 else LocalFuture())
        return steps[-1]

    def wake():
        for f in steps[2:]:
            f._future.set_exception(RuntimeError("woken by the test"))

    with ctrl_c_from_another_thread(lambda: len(steps) >= 3, wake) as rescued, \
            pytest.raises(KeyboardInterrupt) as info:
        train(None, ROWS, CONFIG, training_client=Proxy(client, forward_backward=forward_backward))
    assert not rescued.is_set(), "training slept through Ctrl-C until the step answered"
    assert info.value.__notes__[-1].startswith("training interrupted after step 2 of ")
