"""The benchmark suite runs end to end at tiny sizes (timings are reported by `make bench`, not asserted)."""

import json

from helpers.bench import TARGETS, run, table


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
    text = table(results)
    assert all(key in text for key in TARGETS if key in saved)
    # its student and teacher figures are offline ones, and both the table and the file say so
    assert text.splitlines()[1] == saved["note"] and "stand-in teacher" in saved["note"] and "not from LLMs" in saved["note"]
