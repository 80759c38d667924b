"""The benchmark suite runs end to end at tiny sizes (timings are reported by `make bench`, not asserted)."""

import json
from importlib.metadata import version

import pytest
import torch

from helpers.bench import TARGETS, paired, run, run_watched, table


def test_benchmarks_run_at_tiny_sizes(tmp_path, capsys):
    out = tmp_path / "results.json"
    results = run(tiny=True, out=out)
    log = capsys.readouterr().err.splitlines()  # never silent: a line as each section starts and ends
    assert log[0] == "bench: training overhead ..." and log[-1].startswith("bench: prompt cost and latency done in ")
    assert sum(line.endswith(" ...") for line in log) == 7
    saved = json.loads(out.read_text())
    for key in ("train_overhead_ratio", "batched_sampling_speedup", "generation_vs_ideal_ratio"):
        assert saved[key]["median"] > 0 and saved[key]["min"] <= saved[key]["median"] <= saved[key]["max"]
    assert 0 < saved["prompt_token_ratio"] < 0.1  # a property of the prompt, not a timing
    assert saved["pipeline_seconds"] > 0 and 0 <= saved["pipeline_student_accuracy"] <= 1
    assert saved["machine"]["cpus"] >= 1
    # the versions the figures depend on are recorded, in the file and on the table's first line
    assert saved["machine"]["packages"]["transformers"] == version("transformers")
    assert set(saved["machine"]["packages"]) >= {"transformers", "tokenizers", "lingua-language-detector", "scikit-learn"}
    text = table(results)
    assert f"transformers {version('transformers')}" in text.splitlines()[0]
    # and the CPU, whose kernels move the student's figures as a seed does
    capability = torch.backends.cpu.get_cpu_capability()
    assert saved["machine"]["torch_cpu_capability"] == capability and saved["machine"]["cpu_model"]
    assert f"{capability} kernels" in text.splitlines()[0]
    assert all(key in text for key in TARGETS if key in saved)
    assert "met" not in text.split() and "MISSED" not in text  # tiny sizes are no measure of a target
    # its student and teacher figures are offline ones, and both the table and the file say so
    assert text.splitlines()[1] == saved["note"] and "stand-in teacher" in saved["note"] and "not from LLMs" in saved["note"]


def test_a_child_that_writes_a_lot_is_measured_to_its_end(tmp_path):
    """The pipeline's progress bars write far more than a pipe holds (64 KB): read only at the
    end, the pipe filled and the child waited forever to write (make bench hung at the whole
    pipeline). Here a child writes 2 MB to each stream and must end."""
    import os
    import sys
    import threading

    script = "import sys; sys.stdout.write('o' * 2_000_000); sys.stderr.write('e' * 2_000_000 + '\\nlast line\\n')"
    box = {}
    worker = threading.Thread(target=lambda: box.update(result=run_watched([sys.executable, "-c", script], os.environ)),
                              daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the child never ended: its output is not being drained"
    seconds, peak, code, stderr = box["result"]
    assert code == 0 and seconds > 0 and peak >= 0 and stderr.endswith("last line\n") and len(stderr) > 2_000_000


@pytest.mark.parametrize("side", ["good", "bad"])
def test_the_table_says_met_or_missed_on_the_right_side_of_each_target(side):
    """A figure just inside its target reads "met", just outside "MISSED", for a ratio's median
    (a dict) and a single number alike; a figure without a target has no verdict."""
    results = {"machine": {"cpus": 2, "python": "3.11", "torch": "2"}, "unrelated_seconds": 5.0}
    for key, (op, target) in TARGETS.items():
        inside = target * (0.99 if op == "<=" else 1.01)
        outside = target * (1.01 if op == "<=" else 0.99)
        value = inside if side == "good" else outside
        results[key] = {"median": value, "min": value, "max": value, "runs": 1} if key.endswith("ratio") else value
    rows = {line.split()[0]: line for line in table(results).splitlines()[3:]}
    for key, (op, target) in TARGETS.items():
        assert rows[key].endswith(f"{op} {target:g} {'met' if side == 'good' else 'MISSED'}"), rows[key]
    assert not rows["unrelated_seconds"].rstrip().endswith(("met", "MISSED"))


def test_the_peak_memory_of_a_child_is_measured(tmp_path):
    """run_watched reports the child's own resident memory: one that holds 300 MB for a second
    peaks above 250 MB (a figure never sampled would stay at 0)."""
    import os
    import sys

    script = "import time; block = b'x' * (300 * 2**20); time.sleep(1.5)"
    seconds, peak, code, _ = run_watched([sys.executable, "-c", script], os.environ)
    assert code == 0 and seconds >= 1.5
    assert 250 < peak < 2000


def test_a_failed_training_step_is_not_timed_as_a_fast_one():
    """The local client's futures hold a step's error until asked; the timing asks, so a step
    that failed raises instead of counting as a quick one (the ratio would read as met)."""
    from helpers.bench import _time_local_steps
    from helpers.local.clients import LocalFuture

    class Client:
        def forward_backward(self, batch, loss_fn):
            return LocalFuture.failed(ValueError("a datum longer than the context"))

        def optim_step(self, adam):
            return LocalFuture.completed(None)

    with pytest.raises(ValueError, match="longer than the context"):
        _time_local_steps(Client(), [[1], [2]], None)


def test_the_two_sides_of_a_ratio_take_turns_at_going_first():
    """Each ratio's sides alternate, so that neither always runs first (on a cold cache, or
    just after the other has heated the CPU); batched sampling always ran one at a time first."""
    order = []
    a, b = paired(4, lambda: order.append("a") or len(order), lambda: order.append("b") or len(order))
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert a == [1, 4, 5, 8] and b == [2, 3, 6, 7]  # each side's values, in run order
