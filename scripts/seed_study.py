"""How much of a student's score is the seed? Train one student per seed, score each, vote.

The course's own commands do the work, one after the other, so every figure can be redone
by hand: ``python -m helpers generate`` once (unless ``--data`` names teacher data that
exists), then for each seed ``python -m helpers train --seed N`` and ``python -m helpers
evaluate``, and ``evaluate --predictor teacher`` once. Finished steps are kept: run it
again with more seeds and only the new ones train.

It prints, and writes to ``OUT/seed_study.json``: each run's accuracy and agreement with
the teacher; how many test items were wrong (disagreed with the teacher) in how many runs;
the items wrong in most runs; and the agreement of the runs' plurality vote. The vote is
what an ensemble of all the runs would score: roughly the best that this student, at this
data and budget, can do once the seed's luck is averaged out.

Example (offline, three to four minutes per seed on two cores, by the CPU)::

    .venv/bin/python scripts/seed_study.py --out build/seeds --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.bench import machine  # noqa: E402
from helpers.dataio import iter_jsonl  # noqa: E402
from helpers.evaluate import agreement, agreement_by  # noqa: E402


def seed_spread(runs: Mapping[str, Sequence[str | None]], teacher: Sequence[str | None],
                gold: Sequence[str], kinds: Sequence[str] | None = None) -> dict:
    """Per-run and voted scores of several students on the same items.

    ``runs`` maps a run's name to its predicted labels (None: unparsed), in the order of
    ``teacher`` (the teacher's labels) and ``gold``. The vote takes each item's most common
    answer, as an ensemble would: unparsed ones count only where no run answered, and a tie
    goes to the label that the earliest run (in ``runs``' order; :func:`main` orders them by
    seed) gave.
    With ``kinds`` (each item's kind of query), ``disagreement_by_kind`` gives the share of
    (item, run) pairs of each kind in which the run disagrees with the teacher.
    """
    n = len(gold)
    if not runs or len(teacher) != n or any(len(p) != n for p in runs.values()) or (kinds is not None and len(kinds) != n):
        raise ValueError("seed_spread needs at least one run, and as many predictions (and kinds) as gold labels in each")

    def score(pred):  # accuracy is agreement with the gold labels
        return {"accuracy": agreement(pred, gold)["agreement"], "agreement": agreement(pred, teacher)["agreement"]}

    per_run = {name: score(pred) for name, pred in runs.items()}
    wrong = [sum(pred[i] != teacher[i] for pred in runs.values()) for i in range(n)]
    # most_common lists equal counts in the order first met, so a tie goes to the earliest run.
    answers = [[pred[i] for pred in runs.values() if pred[i] is not None] for i in range(n)]
    vote = [collections.Counter(a).most_common(1)[0][0] if a else None for a in answers]
    by_kind = {}
    if kinds is not None:  # every run scores the same items, so the mean over runs is the pooled share
        split = [agreement_by(kinds, pred, teacher) for pred in runs.values()]
        by_kind = {kind: {"items": s["n"], "disagreement": 1 - statistics.fmean(r[kind]["agreement"] for r in split)}
                   for kind, s in split[0].items()}
    return {
        "runs": per_run,
        "mean_agreement": statistics.fmean(s["agreement"] for s in per_run.values()),
        "mean_accuracy": statistics.fmean(s["accuracy"] for s in per_run.values()),
        "vote": score(vote),
        "wrong_in_runs": {k: wrong.count(k) for k in range(1, len(runs) + 1) if wrong.count(k)},
        "wrong_in_most": [i for i in range(n) if wrong[i] * 2 > len(runs)],
        "wrong_counts": wrong,
        "disagreement_by_kind": by_kind,
    }


def _course(*args: str) -> None:
    print("$ python -m helpers " + " ".join(args), flush=True)
    done = subprocess.run([sys.executable, "-m", "helpers", *args], cwd=ROOT)
    if done.returncode:
        sys.exit(f"seed_study: `python -m helpers {' '.join(args)}` failed with exit code {done.returncode}")


def _predictions(path: Path) -> tuple[list[str], list[str | None], list[str]]:
    rows = [row for _, row in iter_jsonl(path)]
    return [r["text"] for r in rows], [r["label"] for r in rows], [r["gold"] for r in rows]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same_study(out: Path, data: Path, gold: Path, backend: str, queries: Path | None) -> None:
    """Record what the study in ``out`` was made from, or stop if it was made from something else:
    its students and evaluations are reused as they are, so another teacher data, gold file or
    backend would mix two studies into one table."""
    if not gold.is_file():
        sys.exit(f"seed_study: --gold: {gold} does not exist")
    settings = {"data_sha256": _sha256(data), "gold_sha256": _sha256(gold), "backend": backend,
                "queries_sha256": _sha256(queries) if queries else None}
    path = out / "study-settings.json"
    if path.exists():
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            sys.exit(f"seed_study: {path} is damaged: use a new --out, or delete it if the study's settings did not change")
        changed = [key for key in settings if before.get(key) != settings[key]]
        if changed:
            sys.exit(f"seed_study: {out} holds a study made with other settings ({', '.join(changed)}): use a new --out")
    else:
        path.write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the teacher data, students and evaluations")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", help="teacher data (JSONL, as generate writes it); default OUT/distill.jsonl, generated if missing")
    # every path is read from the working directory, as the course's commands read theirs; the
    # defaults name the course's own files wherever the script is run from
    parser.add_argument("--queries", default=str(ROOT / "data" / "queries.jsonl"), help="queries to generate the teacher data from")
    parser.add_argument("--gold", default=str(ROOT / "data" / "test_gold.jsonl"), help="labelled test set")
    parser.add_argument("--backend", choices=["local", "tinker"], default="local")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds: each seed once, got {args.seeds}")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data).resolve() if args.data else out / "distill.jsonl"
    queries, gold_path = Path(args.queries).resolve(), Path(args.gold).resolve()
    backend = ["--backend", args.backend]
    if not args.data and not queries.is_file():
        sys.exit(f"seed_study: --queries: {queries} does not exist")
    if not data.exists():
        if args.data:
            sys.exit(f"seed_study: --data: {data} does not exist")
        _course("generate", "--queries", str(queries), "--out", str(data), "--no-progress", *backend)
    # before anything else is reused or made: the folder's study must be this one
    _same_study(out, data, gold_path, args.backend, None if args.data else queries)
    teacher_dir = out / "eval_teacher"
    if not (teacher_dir / "predictions.jsonl").exists():
        _course("evaluate", "--data", str(gold_path), "--predictor", "teacher", "--out", str(teacher_dir), "--no-progress", *backend)
    texts, teacher, gold = _predictions(teacher_dir / "predictions.jsonl")
    runs = {}
    for seed in sorted(args.seeds):
        student, evaluation = out / f"seed_{seed}", out / f"eval_{seed}"
        if not (student / "checkpoint.json").exists():
            _course("train", "--data", str(data), "--out", str(student), "--seed", str(seed), *backend)
        if not (evaluation / "predictions.jsonl").exists():
            _course("evaluate", "--data", str(gold_path), "--predictor", f"student:{student}", "--out", str(evaluation), "--no-progress", *backend)
        run_texts, runs[f"seed {seed}"], _ = _predictions(evaluation / "predictions.jsonl")
        if run_texts != texts:
            sys.exit(f"seed_study: {evaluation / 'predictions.jsonl'} does not score the same items as {teacher_dir}")
    gold_rows = [row for _, row in iter_jsonl(gold_path)]
    if [row["text"] for row in gold_rows] != texts:
        sys.exit(f"seed_study: {gold_path} does not hold the items that {teacher_dir} scored")
    if [row.get("label") for row in gold_rows] != gold:
        sys.exit(f"seed_study: {gold_path}'s labels are not those {teacher_dir} scored against: use a new --out")
    result = seed_spread(runs, teacher, gold, [row.get("kind", "(none)") for row in gold_rows])
    print(f"\n{'run':<10} {'accuracy':>9} {'agreement':>10}")
    for name, s in result["runs"].items():
        print(f"{name:<10} {s['accuracy']:>9.4f} {s['agreement']:>10.4f}")
    print(f"{'mean':<10} {result['mean_accuracy']:>9.4f} {result['mean_agreement']:>10.4f}")
    print(f"{'vote':<10} {result['vote']['accuracy']:>9.4f} {result['vote']['agreement']:>10.4f}")
    print("items that disagree with the teacher, by the number of runs they do so in:", result["wrong_in_runs"])
    print("disagreement with the teacher by kind of query (share of item-runs):")
    for kind, s in sorted(result["disagreement_by_kind"].items(), key=lambda kv: -kv[1]["disagreement"]):
        print(f"  {kind:<20} {s['disagreement']:>6.3f}  ({s['items']} items)")
    print(f"wrong in most runs ({len(result['wrong_in_most'])}):")
    for i in result["wrong_in_most"]:
        print(f"  {result['wrong_counts'][i]}/{len(runs)}  teacher {teacher[i]}  gold {gold[i]}  {texts[i][:70]!r}")
    (out / "seed_study.json").write_text(json.dumps(
        {**result, "machine": machine(), "items": [{"text": t, "teacher": te, "gold": g} for t, te, g in zip(texts, teacher, gold, strict=True)]},
        ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
