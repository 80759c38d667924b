"""The benchmark suite runs end to end at tiny sizes (timings are reported by `make bench`, not asserted)."""

import json

from helpers.bench import TARGETS, run, table


def test_benchmarks_run_at_tiny_sizes(tmp_path):
    out = tmp_path / "results.json"
    results = run(tiny=True, out=out)
    saved = json.loads(out.read_text())
    for key in ("train_overhead_ratio", "batched_sampling_speedup", "generation_vs_ideal_ratio"):
        assert saved[key]["median"] > 0 and saved[key]["min"] <= saved[key]["median"] <= saved[key]["max"]
    assert 0 < saved["prompt_token_ratio"] < 0.1  # a property of the prompt, not a timing
    assert saved["pipeline_seconds"] > 0 and 0 <= saved["pipeline_student_accuracy"] <= 1
    assert saved["machine"]["cpus"] >= 1
    text = table(results)
    assert all(key in text for key in TARGETS if key in saved)
