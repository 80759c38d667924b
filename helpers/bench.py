"""Benchmarks: speed, cost and quality as ratios measured side by side in one run.

    python -m helpers.bench            # full sizes (make bench), writes bench/results.json
    python -m helpers.bench --tiny     # seconds; what the test suite runs so this cannot rot

Each figure is measured several times after a warm-up; the report gives the
median and the spread (min, max), and ratios are computed pair by pair (the two
sides of a ratio run back to back, so a noisy neighbour hits both). Peak memory
is the process's resident set size sampled while each section runs.

Figures (keys of ``results.json``):

- ``train_overhead_ratio``: a local ``forward_backward`` + ``optim_step`` over the
  plain PyTorch loop (same model, same batches, same AdamW). Target <= 1.10.
- ``length_grouping_speedup_shuffled`` and ``_training``: the local client with one
  padded tensor per ``forward_backward`` over the same calls split into groups of
  similar length (the default), on batches of 32 pool queries drawn at random, and on
  the batches ``helpers.train`` makes (already sorted by length within windows, so
  the gain there is small). Informational.
- ``batched_sampling_speedup``: 500 short prompts sampled one at a time over all
  submitted at once (the local sampler batches them). Target >= 5.
- ``generation_vs_ideal_ratio``: generating for 1,000 queries through a teacher that
  answers after a fixed 200 ms, at concurrency 32, over the ideal N x 0.2 / 32 s.
  The teacher behind the delay returns a fixed answer instantly, so the figure
  measures the generator, not a model. Target <= 1.15.
- ``standin_queries_per_second``: the offline stand-in teacher through the full path
  (render the prompt, sample, parse, write).
- ``prompt_token_ratio``: student over teacher prompt tokens per query. Target <= 0.1.
- ``latency_ratio``: student over teacher seconds per query on the local backend
  (offline the teacher is the rule-based stand-in, so this says little about LLMs).
- ``pipeline_seconds``: ``python -m helpers run`` offline, start to finish. Target <= 360.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class PeakMemory:
    """Samples this process's RSS in a thread; ``peak_mb`` after the ``with`` block."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_mb = 0.0

    def __enter__(self):
        import psutil

        self._proc = psutil.Process()
        self._stop = threading.Event()

        def watch():
            while not self._stop.is_set():
                self.peak_mb = max(self.peak_mb, self._proc.memory_info().rss / 2**20)
                time.sleep(self.interval)

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._proc.memory_info().rss / 2**20)


def summarise(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


# --------------------------------------------------------------------------- sections


def paired(repeats: int, first, second) -> tuple[list[float], list[float]]:
    """Run the measurements ``first()`` and ``second()`` back to back ``repeats`` times, taking
    turns at going first, so that neither side always runs on the warmer (or busier) machine.
    Returns each side's values in run order."""
    a, b = [], []
    for i in range(repeats):
        if i % 2 == 0:
            a.append(first())
            b.append(second())
        else:
            b.append(second())
            a.append(first())
    return a, b


def _time_local_steps(client, batches, adam) -> float:
    """Seconds for one forward_backward + optim_step per batch on a local training client."""
    start = time.perf_counter()
    for batch in batches:
        done = client.forward_backward(batch, "cross_entropy")
        client.optim_step(adam).result()
        done.result()  # a failed step raises here: timed, it would read as a fast one
    return time.perf_counter() - start


def bench_train_overhead(repeats: int, steps: int, batch_size: int = 32) -> dict:
    """Local training client vs a plain PyTorch loop, on the same model and batches."""
    import torch
    from tinker import types

    from .local import LocalServiceClient
    from .local.clients import load_model
    from .render import conversation, render_example

    rows = [json.loads(line) for line in (ROOT / "data" / "queries.jsonl").open(encoding="utf-8")][: steps * batch_size]
    service = LocalServiceClient(store=tempfile.mkdtemp())
    client = service.create_lora_training_client("local/tiny", seed=0).result()
    # one padded tensor per call, as the plain loop pads its batch: the ratio is the client's own
    # overhead, not the length grouping (which has its figure below)
    client.call_overhead_tokens = float("inf")
    tok = client.get_tokenizer()
    data = [render_example(tok, conversation(r["text"], "ot")).to_datum() for r in rows]
    data.sort(key=lambda d: d.model_input.length)  # similar lengths together, for both sides alike
    batches = [data[i : i + batch_size] for i in range(0, len(data), batch_size)]
    adam = types.AdamParams(learning_rate=1e-3)

    plain = load_model("local/tiny", seed=0).model
    plain.train()
    opt = torch.optim.AdamW(plain.parameters(), lr=1e-3, betas=(adam.beta1, adam.beta2), eps=adam.eps, weight_decay=0.0)
    tensors = []
    for batch in batches:  # the plain loop gets its tensors ready-made: only the step is timed
        n, width = len(batch), max(d.model_input.length for d in batch)
        ids = torch.zeros((n, width), dtype=torch.long)
        tgt = torch.zeros((n, width), dtype=torch.long)
        w = torch.zeros((n, width))
        mask = torch.zeros((n, width), dtype=torch.long)
        for r, d in enumerate(batch):
            x = d.model_input.to_ints()
            ids[r, : len(x)] = torch.tensor(x)
            tgt[r, : len(x)] = torch.from_numpy(d.loss_fn_inputs["target_tokens"].to_numpy())
            w[r, : len(x)] = torch.from_numpy(d.loss_fn_inputs["weights"].to_numpy())
            mask[r, : len(x)] = 1
        tensors.append((ids, tgt, w, mask))

    def run_local():
        return _time_local_steps(client, batches, adam)

    def run_plain():
        start = time.perf_counter()
        for ids, tgt, w, mask in tensors:
            logits = plain(input_ids=ids, attention_mask=mask).logits.float()
            lp = -torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt.flatten(), reduction="none").view(tgt.shape)
            (-(lp * w).sum()).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    run_local(), run_plain()  # warm-up
    with PeakMemory() as mem:
        local_t, plain_t = paired(repeats, run_local, run_plain)
    ratios = [a / b for a, b in zip(local_t, plain_t, strict=True)]
    return {"train_overhead_ratio": summarise(ratios), "train_local_seconds": summarise(local_t),
            "train_plain_seconds": summarise(plain_t), "train_steps": len(batches), "train_peak_mb": mem.peak_mb}


def bench_length_grouping(repeats: int, steps: int, batch_size: int = 32) -> dict:
    """One padded tensor per forward_backward vs groups of similar length, same batches."""
    import random

    from tinker import types

    from .local import LocalServiceClient
    from .local.clients import LocalTrainingClient
    from .render import conversation, render_example
    from .train import epoch_batches

    rows = [json.loads(line) for line in (ROOT / "data" / "queries.jsonl").open(encoding="utf-8")]
    random.Random(0).shuffle(rows)
    client = LocalServiceClient(store=tempfile.mkdtemp()).create_lora_training_client("local/tiny", seed=0).result()
    tok = client.get_tokenizer()
    data = [render_example(tok, conversation(r["text"], "ot")).to_datum(prompt_weight=0.5) for r in rows[: steps * batch_size * 8]]
    adam = types.AdamParams(learning_rate=1e-4)
    grouped = LocalTrainingClient.call_overhead_tokens
    shuffled = [data[i : i + batch_size] for i in range(0, steps * batch_size, batch_size)]
    in_training = [[data[i] for i in b] for b in epoch_batches([d.model_input.length for d in data], batch_size, random.Random(0))][:steps]

    def timed(batches, overhead: float) -> float:
        client.call_overhead_tokens = overhead
        return _time_local_steps(client, batches, adam)

    timed(shuffled, grouped)  # warm-up
    results = {}
    for name, batches in (("shuffled", shuffled), ("training", in_training)):
        whole, groups = paired(repeats, lambda b=batches: timed(b, float("inf")), lambda b=batches: timed(b, grouped))
        results[f"length_grouping_speedup_{name}"] = summarise([a / b for a, b in zip(whole, groups, strict=True)])
    return results


def bench_batched_sampling(repeats: int, n_prompts: int) -> dict:
    from tinker import types

    from .local import LocalServiceClient
    from .render import model_input

    sampler = LocalServiceClient().create_sampling_client(base_model="local/tiny").result()
    tok = sampler.get_tokenizer()
    rows = [json.loads(line) for line in (ROOT / "data" / "queries.jsonl").open(encoding="utf-8")][:n_prompts]
    prompts = [model_input(tok, [{"role": "user", "content": r["text"]}]) for r in rows]
    params = types.SamplingParams(max_tokens=4, temperature=0.0, stop=[])

    def one_at_a_time():
        start = time.perf_counter()
        for p in prompts:
            sampler.sample(p, 1, params).result()
        return time.perf_counter() - start

    def all_at_once():
        start = time.perf_counter()
        futures = [sampler.sample(p, 1, params) for p in prompts]
        for f in futures:
            f.result()
        return time.perf_counter() - start

    all_at_once()  # warm-up
    with PeakMemory() as mem:
        seq_t, batch_t = paired(repeats, one_at_a_time, all_at_once)
    speedups = [a / b for a, b in zip(seq_t, batch_t, strict=True)]
    return {"batched_sampling_speedup": summarise(speedups), "sampling_one_at_a_time_seconds": summarise(seq_t),
            "sampling_batched_seconds": summarise(batch_t), "sampling_prompts": n_prompts, "sampling_peak_mb": mem.peak_mb}


class _InstantTeacher:
    """Answers ``Final Answer: ot`` at once: behind a fixed delay it isolates the generator's cost."""

    def __init__(self, tokenizer):
        from tinker import types

        self.tokenizer = tokenizer
        self._types = types
        self._answer = tokenizer.encode("Final Answer: ot", add_special_tokens=False) + [tokenizer.eos_token_id]

    def get_tokenizer(self):
        return self.tokenizer

    def get_base_model(self):
        return "instant"

    def sample(self, prompt, num_samples, sampling_params, **kwargs):
        import numpy as np

        from .local import LocalFuture

        seq = self._types.SampledSequence(stop_reason="stop", sequence_id="x", tokens_np=np.asarray(self._answer, np.int32))
        return LocalFuture.completed(self._types.SampleResponse(sequences=[seq] * num_samples))


def bench_generation(repeats: int, n_queries: int, delay: float = 0.2, concurrency: int = 32) -> dict:
    from .generate import GenerateConfig, LatencyTeacher, generate
    from .local.model import load_tokenizer

    teacher = LatencyTeacher(_InstantTeacher(load_tokenizer()), delay)
    queries = [f"benchmark query number {i}" for i in range(n_queries)]
    ideal = n_queries * delay / concurrency
    ratios, secs = [], []
    with PeakMemory() as mem:
        for r in range(repeats + 1):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                generate(teacher, queries, Path(tmp) / "out.jsonl", config=GenerateConfig(concurrency=concurrency, seed=r),
                         progress=False, teacher_name=f"instant-{r}")
                took = time.perf_counter() - start
            if r:  # the first run is the warm-up
                secs.append(took)
                ratios.append(took / ideal)
    return {"generation_vs_ideal_ratio": summarise(ratios), "generation_seconds": summarise(secs),
            "generation_ideal_seconds": ideal, "generation_queries": n_queries, "generation_peak_mb": mem.peak_mb}


def bench_standin(n_queries: int) -> dict:
    from .generate import generate
    from .local import TEACHER_MODEL, LocalServiceClient

    teacher = LocalServiceClient().create_sampling_client(base_model=TEACHER_MODEL).result()
    rows = [json.loads(line)["text"] for line in (ROOT / "data" / "queries.jsonl").open(encoding="utf-8")]
    with tempfile.TemporaryDirectory() as tmp:
        generate(teacher, rows[:50], Path(tmp) / "warm.jsonl", progress=False)  # loads the detector's models
        with PeakMemory() as mem:
            start = time.perf_counter()
            generate(teacher, rows[50 : 50 + n_queries], Path(tmp) / "out.jsonl", progress=False)
            took = time.perf_counter() - start
    return {"standin_queries_per_second": n_queries / took, "standin_queries": n_queries, "standin_peak_mb": mem.peak_mb}


def bench_cost(n_queries: int, student_dir: Path | None) -> dict:
    from . import evaluate as ev
    from .local import TEACHER_MODEL, LocalServiceClient

    rows = [json.loads(line)["text"] for line in (ROOT / "data" / "test_gold.jsonl").open(encoding="utf-8")][:n_queries]
    service = LocalServiceClient()
    teacher = service.create_sampling_client(base_model=TEACHER_MODEL).result()
    if student_dir and (student_dir / "checkpoint.json").exists():
        student = ev.sampling_client_for(f"student:{student_dir}", service)
    else:
        student = service.create_sampling_client(base_model="local/tiny").result()
    t_tok = ev.prompt_tokens_per_query(teacher.get_tokenizer(), rows, with_prompt=True)
    s_tok = ev.prompt_tokens_per_query(student.get_tokenizer(), rows, with_prompt=False)
    t_lat = ev.measure_latency(teacher, teacher.get_tokenizer(), rows, with_prompt=True)
    s_lat = ev.measure_latency(student, student.get_tokenizer(), rows, with_prompt=False)
    t_mean, s_mean = sum(t_tok) / len(t_tok), sum(s_tok) / len(s_tok)
    return {"teacher_prompt_tokens": t_mean, "student_prompt_tokens": s_mean, "prompt_token_ratio": s_mean / t_mean,
            "teacher_seconds_per_query": t_lat, "student_seconds_per_query": s_lat, "latency_ratio": s_lat / t_lat}


def run_watched(cmd: list[str], env: Mapping[str, str]) -> tuple[float, float, int, str]:
    """Run ``cmd`` from the repository root: (seconds, peak resident MB of it and its children,
    exit code, its stderr).

    Its output goes to files, not pipes: a pipe that is read only at the end fills up (64 KB
    on Linux) with the progress bars of a long run, and the child then waits forever to write.
    """
    import psutil

    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
        start = time.perf_counter()
        proc = psutil.Popen(cmd, env=dict(env), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors, text=True)
        peak = 0.0
        while proc.poll() is None:
            try:
                peak = max(peak, sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.2)
        took = time.perf_counter() - start
        errors.seek(0)
        return took, peak, proc.returncode, errors.read()


def bench_pipeline(quick: bool, out: Path, tiny: bool = False) -> dict:
    """``python -m helpers run`` as a user runs it, in a child process (its peak memory included).

    ``tiny`` runs it on 150 queries and 60 gold rows, so the test suite can afford it.
    """
    cmd = [sys.executable, "-m", "helpers", "run", "--out", str(out), "--backend", "local", "--overwrite"]
    if quick:
        cmd.append("--quick")
    if tiny:
        for flag, name, n in (("--queries", "queries.jsonl", 150), ("--gold", "test_gold.jsonl", 60)):
            rows = (ROOT / "data" / name).read_text(encoding="utf-8").splitlines()
            small = out.parent / f"tiny_{name}"
            small.write_text("\n".join(rows[:: max(1, len(rows) // n)][:n]) + "\n", encoding="utf-8")
            cmd += [flag, str(small)]
    env = {**os.environ, "PD_BACKEND": "local", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    took, peak, code, stderr = run_watched(cmd, env)
    if code != 0:
        raise RuntimeError(f"pipeline failed: {stderr.strip().splitlines()[-1] if stderr.strip() else code}")
    report = json.loads((out / "report.json").read_text())
    return {"pipeline_seconds": took, "pipeline_quick": quick, "pipeline_peak_mb": peak,
            "pipeline_train_seconds": report["train_seconds"], "pipeline_student_accuracy": report["student_accuracy"],
            "pipeline_agreement": report["agreement"], "pipeline_teacher_accuracy": report["teacher_accuracy"]}


# --------------------------------------------------------------------------- entry point

TARGETS = {
    "train_overhead_ratio": ("<=", 1.10), "batched_sampling_speedup": (">=", 5.0), "generation_vs_ideal_ratio": ("<=", 1.15),
    "prompt_token_ratio": ("<=", 0.10), "pipeline_seconds": ("<=", 360.0), "pipeline_train_seconds": ("<=", 180.0),
    # the quality bar of the training issue, offline: the tiny student against the stand-in teacher
    "pipeline_student_accuracy": (">=", 0.96), "pipeline_agreement": (">=", 0.97),
}


# The packages the offline figures depend on: the tiny model's initial weights and kernels
# (torch, transformers), its tokenizer (tokenizers), the stand-in's detector (lingua), the
# baseline (scikit-learn). Another release of one of them can move a figure as a seed does.
FIGURE_PACKAGES = ("transformers", "tokenizers", "lingua-language-detector", "scikit-learn", "numpy")


def cpu_model() -> str:
    """The CPU's model name from Linux's ``/proc/cpuinfo``; "" where it does not say."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.partition(":")[2].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return ""


def machine() -> dict:
    """The machine and the versions of the packages the figures depend on.

    ``torch_cpu_capability`` is the vector instruction set torch's kernels use here (``AVX2``,
    ``AVX512``, ...). The student's figures depend on it as they do on the versions: kernels
    for other instructions round differently, and over a thousand training steps carry the
    difference as far as another seed does (the README's benchmark section).
    """
    from importlib.metadata import PackageNotFoundError, version

    import torch

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    processor = platform.processor() or platform.machine()
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "processor": processor, "cpu_model": cpu_model() or processor,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "packages": {name: installed(name) for name in FIGURE_PACKAGES}}


OFFLINE_NOTE = ("offline: every figure comes from the local backend, the rule-based stand-in teacher and the "
                "tiny local student, not from LLMs")


def run(tiny: bool = False, out: Path | None = None, skip_pipeline: bool = False, log=None) -> dict:
    """Every benchmark, its results saved to ``out`` (default ``bench/results.json``, or
    ``bench/results-tiny.json`` for a tiny run) and returned.

    ``log`` (default stderr) gets one line as each section starts and ends, so a long run is
    never silent.
    """
    log = sys.stderr if log is None else log
    sizes = dict(repeats=2, steps=3, prompts=24, queries=64, standin=40, cost=20) if tiny else \
        dict(repeats=5, steps=20, prompts=500, queries=1000, standin=500, cost=100)
    results: dict = {"machine": machine(), "tiny": tiny, "note": OFFLINE_NOTE}

    def section(name: str, measure) -> None:
        print(f"bench: {name} ...", file=log, flush=True)
        started = time.perf_counter()
        results.update(measure())
        print(f"bench: {name} done in {time.perf_counter() - started:.0f} s", file=log, flush=True)

    section("training overhead", lambda: bench_train_overhead(sizes["repeats"], sizes["steps"]))
    section("length grouping", lambda: bench_length_grouping(sizes["repeats"], sizes["steps"]))
    section("batched sampling", lambda: bench_batched_sampling(sizes["repeats"], sizes["prompts"]))
    section("generation", lambda: bench_generation(sizes["repeats"], sizes["queries"], delay=0.02 if tiny else 0.2))
    section("stand-in teacher", lambda: bench_standin(sizes["standin"]))
    with tempfile.TemporaryDirectory() as tmp:
        if not skip_pipeline:
            section("whole pipeline (python -m helpers run, offline)",
                    lambda: bench_pipeline(quick=tiny, out=Path(tmp) / "run", tiny=tiny))
        section("prompt cost and latency", lambda: bench_cost(sizes["cost"], Path(tmp) / "run" / "student"))
    path = out or ROOT / "bench" / ("results-tiny.json" if tiny else "results.json")  # a smoke run keeps the real figures
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    return results


def table(results: dict) -> str:
    def value(v):
        return v["median"] if isinstance(v, dict) else v

    box = results["machine"]
    packages = ", ".join(f"{name} {v}" for name, v in box.get("packages", {}).items())
    cpu = f" ({box['cpu_model']}, {box['torch_cpu_capability']} kernels)" if "cpu_model" in box else ""
    lines = [f"machine: {box['cpus']} CPUs{cpu}, Python {box['python']}, torch {box['torch']}"
             + (f"; {packages}" if packages else ""),
             results.get("note", OFFLINE_NOTE),
             f"{'figure':34} {'median':>10} {'min':>9} {'max':>9}  target"]
    for key, v in results.items():
        if key in ("machine", "tiny", "note") or isinstance(v, bool):
            continue
        if isinstance(v, dict):
            row = f"{key:34} {v['median']:10.3f} {v['min']:9.3f} {v['max']:9.3f}"
        elif isinstance(v, int | float):
            row = f"{key:34} {v:10.3f} {'':9} {'':9}"
        else:
            continue
        if key in TARGETS and results.get("tiny"):
            row += f"  {TARGETS[key][0]} {TARGETS[key][1]:g} (tiny run: no verdict)"
        elif key in TARGETS:
            op, target = TARGETS[key]
            met = value(v) <= target if op == "<=" else value(v) >= target
            row += f"  {op} {target:g} {'met' if met else 'MISSED'}"
        lines.append(row)
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Benchmarks of the course's helpers (ratios measured side by side).")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes, seconds (the test suite's smoke run)")
    ap.add_argument("--out", type=Path, default=None, help="results file (default bench/results.json)")
    ap.add_argument("--skip-pipeline", action="store_true", help="leave out the whole-pipeline run")
    args = ap.parse_args(argv)
    results = run(args.tiny, args.out, args.skip_pipeline)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
