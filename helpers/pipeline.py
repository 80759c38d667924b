"""The whole recipe in one call: generate, train, baseline, evaluate, report.

``run_pipeline(out)`` (and ``python -m helpers run --out DIR``) labels the query
pool with the teacher, trains the student on the teacher's answers without the
prompt, trains the classic baseline on the same labels, evaluates teacher, base,
student and baseline on the gold set, and writes to ``out``:

- ``distill.jsonl`` (+ rejects and summary), the distillation data
- ``student/`` (``checkpoint.json``), usable as ``--predictor student:OUT/student``
- ``baseline/``, usable as ``--predictor baseline:OUT/baseline``
- ``metrics_<predictor>.json``, ``confusion.png``, ``confusion_normalized.png``, ``cost.png``
- ``report.md`` and ``report.json`` (the figures ``make run`` prints, and the student's and
  baseline's agreement with the teacher by kind of query when the gold set gives kinds)
- ``errors.md``, the gold queries that the teacher, the student or the baseline got wrong

Run again into the same ``out`` (after an interruption, say), it reuses what the
first two steps did and redoes the rest:

- labelling: a finished ``distill.jsonl`` of the same teacher, prompt, settings and
  queries is reused (only queries whose requests failed are asked again); an unfinished
  one resumes from ``distill.jsonl.partial``; one made another way is refused unless
  ``overwrite``, which labels the pool again in its place;
- training: a student of the same data and settings in ``student/`` resumes from its
  last checkpoint, or, finished, trains no more steps; a student of other data or
  settings there is trained again from the start (``student/`` is this run's own);
- the baseline, the four evaluations on the gold set, the pictures and the report
  are done again every time (on Tinker, the teacher, base and student are asked again);
  the earlier metrics, pictures and report are removed as the run starts, so a run
  that fails leaves none that look like its own.

Other files in ``out`` are refused unless ``overwrite``, and then kept. Offline, the
teacher is the rule-based stand-in and the student a tiny local model; the report says so.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from . import baseline as baseline_mod
from . import evaluate as ev
from .backend import check_model, choose_backend, connect, context_length
from .course import QUICK_QUERIES, even_sample
from .dataio import (
    DataError,
    is_temp_file,
    locate,
    read_conversations,
    read_gold,
    read_queries,
    write_text,
)
from .generate import GenerateConfig, GenerateEstimate, generate
from .train import TrainConfig, train

DATA = Path(__file__).resolve().parents[1] / "data"
# what each run redoes (and removes as it starts); with metrics_*.json
RESULTS = ("report.md", "report.json", "errors.md", "confusion.png", "confusion_normalized.png", "cost.png")
OWN_FILES = {
    "distill.jsonl", "distill.jsonl.partial", "distill.jsonl.rejects.jsonl", "distill.jsonl.summary.json",
    "distill.jsonl.meta.json", "student", "baseline", *RESULTS,
}
OFFLINE_NOTE = (
    "Offline run: the teacher is the rule-based stand-in (the prompt's policy on top of the "
    "lingua language detector) and the student a tiny byte-level model trained on this CPU. "
    "These are not LLM results."
)


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, or (unless ``overwrite``) a folder holding files the run did not write."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; choose another --out")
    if out.exists() and any(out.iterdir()):
        foreign = sorted(p.name for p in out.iterdir()
                         if p.name not in OWN_FILES and not p.name.startswith("metrics") and not is_temp_file(p.name))
        if foreign and not overwrite:
            raise DataError(f"{out}: folder holds other files ({', '.join(foreign[:3])}); use --overwrite or another --out")


def _clear_results(out: Path) -> None:
    """Remove the report, metrics, pictures and error table of an earlier run into ``out``: they
    are redone at the end of this one, and a run that fails before then must not leave the old
    ones looking like its own. The labels and the student (the work a rerun reuses) stay."""
    for path in [out / name for name in RESULTS] + sorted(out.glob("metrics_*.json")):
        path.unlink(missing_ok=True)


def _inputs(queries, gold, quick: bool) -> tuple[list[dict], list[dict]]:
    """The query pool (the quick sample with ``quick``) and the gold rows a run works on."""
    query_rows = read_queries(queries or DATA / "queries.jsonl")
    gold_rows = read_gold(gold or DATA / "test_gold.jsonl")
    return (even_sample(query_rows, QUICK_QUERIES) if quick else query_rows), gold_rows


def run_pipeline(out, backend: str | None = None, quick: bool = False, queries=None, gold=None,
                 overwrite: bool = False, progress: bool = True, train_overrides: dict | None = None) -> dict:
    """Run every step into ``out``; return the report (also written as report.json)."""
    out = Path(out)
    backend, why = choose_backend(backend)
    _check_out(out, overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{out}: cannot create folder ({e.strerror})") from None
    _clear_results(out)
    started = time.time()
    timings: dict[str, float] = {}
    query_rows, gold_rows = _inputs(queries, gold, quick)
    config = TrainConfig.for_backend(backend, quick=quick, **(train_overrides or {}))
    config.validate()
    service = connect(backend, store=out / "student" / "weights")
    models = ev.default_models(backend)
    teacher_model = models["teacher"]
    # Before the labelling is paid for: every model the run will use must be one the server can use.
    check_model(service, teacher_model, use="sample")
    check_model(service, models["base"], use="sample")
    check_model(service, config.base_model, use="train")

    # 1. The teacher labels the pool, with the long prompt.
    t = time.time()
    teacher = service.create_sampling_client(base_model=teacher_model).result()
    summary = generate(teacher, query_rows, out / "distill.jsonl", config=GenerateConfig(teacher_model=teacher_model),
                       overwrite=overwrite, progress=progress, teacher_name=teacher_model,
                       max_context=context_length(service, teacher_model))
    timings["generate"] = time.time() - t
    rows = read_conversations(out / "distill.jsonl")
    labels = [r["messages"][-1]["content"] for r in rows]
    if len(set(labels)) < 2:  # the baseline cannot learn one label: say so before the student is trained (and paid for)
        raise DataError(f"{out / 'distill.jsonl'}: the teacher gave every query the same label "
                        f"({labels[0] if labels else 'none'}); the baseline needs two labels or more: add queries in other languages")

    # 2. The student learns the teacher's answers, without the prompt.
    t = time.time()
    try:
        result = train(service, rows, config, out_dir=out / "student", progress=progress)
    except DataError as e:  # a labelled row the student cannot take (too long for its context): name its line
        raise locate(e, out / "distill.jsonl") from None
    timings["train"] = time.time() - t

    # 3. The classic baseline on the same labels.
    t = time.time()
    texts = [r["messages"][0]["content"] for r in rows]
    model = baseline_mod.train_baseline(texts, labels)
    baseline_mod.save_baseline(model, out / "baseline", backend=backend, teacher_model=teacher_model, examples=len(texts))
    timings["baseline"] = time.time() - t

    # 4. Everyone on the gold set.
    t = time.time()
    gold_texts = [r["text"] for r in gold_rows]
    gold_labels = [r["label"] for r in gold_rows]
    specs = {"teacher": "teacher", "base": "base", "student": f"student:{out / 'student'}", "baseline": f"baseline:{out / 'baseline'}"}
    predictions, metrics = {}, {}
    for name, spec in specs.items():
        preds = ev.predict(spec, gold_texts, service=service, progress=progress)
        predictions[name] = ev.labels_of(preds)
        metrics[name] = ev.compute_metrics(gold_labels, predictions[name])
        ev.write_metrics(out, name, metrics[name])
    agree = ev.agreement(predictions["student"], predictions["teacher"])
    kinds = [r.get("kind") for r in gold_rows]  # where the student parts from the teacher, when the gold set says
    by_kind = {}
    if all(isinstance(k, str) for k in kinds):
        student, baseline = (ev.agreement_by(kinds, predictions[name], predictions["teacher"]) for name in ("student", "baseline"))
        by_kind = {kind: {"n": s["n"], "student": s["agreement"], "baseline": baseline[kind]["agreement"]} for kind, s in student.items()}
    timings["evaluate"] = time.time() - t

    # 5. Pictures, cost, report.
    from .plots import mark_offline, plot_confusions, plot_cost, save_figure

    offline = backend == "local"
    shown = {k: metrics[k] for k in ("teacher", "base", "student")}
    save_figure(mark_offline(plot_confusions(shown), offline), out / "confusion.png")
    save_figure(mark_offline(plot_confusions(shown, normalize=True), offline), out / "confusion_normalized.png")
    teacher_tok = teacher.get_tokenizer()
    student_tok = result.sampling_client.get_tokenizer()
    teacher_tokens = ev.prompt_tokens_per_query(teacher_tok, gold_texts, with_prompt=True)
    student_tokens = ev.prompt_tokens_per_query(student_tok, gold_texts, with_prompt=False)
    cost = ev.cost_table(teacher_tokens, student_tokens)
    payback = ev.run_payback(cost, summary.__dict__, result.history, config.batch_size)
    save_figure(mark_offline(plot_cost(cost), offline), out / "cost.png")
    errors = ev.error_table(gold_texts, gold_labels, {k: predictions[k] for k in ("teacher", "student", "baseline")})
    write_text(out / "errors.md", ev.markdown_table(errors, max_rows=None))

    report = {
        "backend": backend,
        "backend_reason": why,
        "offline": offline,
        "teacher_model": teacher_model,
        "student_model": config.base_model,
        "queries": len(query_rows),
        "distillation_rows": len(rows),
        "gold": str(gold or DATA / "test_gold.jsonl"),
        "n": len(gold_rows),
        "teacher_accuracy": metrics["teacher"]["accuracy"],
        "base_accuracy": metrics["base"]["accuracy"],
        "student_accuracy": metrics["student"]["accuracy"],
        "baseline_accuracy": metrics["baseline"]["accuracy"],
        "student_accuracy_ci": metrics["student"].get("accuracy_ci"),
        "agreement": agree["agreement"],
        "kappa": agree["kappa"],
        "agreement_by_kind": by_kind,
        "teacher_prompt_tokens": cost["teacher_tokens_per_query"],
        "student_prompt_tokens": cost["student_tokens_per_query"],
        "cost": cost,
        "payback": payback,
        "generation": json.loads(json.dumps(summary.__dict__, default=str)),
        "train_seconds": timings["train"],
        "training": result.describe(),
        "train_steps": len(result.history),
        "timings": timings,
        "seconds": time.time() - started,
    }
    report["prompt_token_ratio"] = report["student_prompt_tokens"] / report["teacher_prompt_tokens"]
    report["summary"] = summary_text(report)
    write_text(out / "report.json", json.dumps(report, indent=1, ensure_ascii=False, default=str))
    write_text(out / "report.md", report_markdown(report, metrics))
    return report


@dataclass(frozen=True)
class RunEstimate:
    """What :func:`run_pipeline` with the same arguments would ask of the models, counted before asking.

    Token counts use each model's own tokenizer. Labelling is exact (the requests and prompts
    :func:`helpers.generate.estimate` counts); training is an upper bound (every query becomes
    a row with the longest label, every epoch, validation rows included); evaluation asks the
    teacher with the prompt and the base model and the student without it, once per gold row.
    Sampled tokens are the most the answers may take. ``usd`` prices them with
    :data:`helpers.evaluate.PRICES` (EXAMPLE prices: edit them).
    """

    backend: str
    teacher: str
    student: str
    generation: GenerateEstimate
    train_tokens: int
    epochs: int
    eval_requests: dict  # predictor -> requests (gold rows)
    eval_prompt_tokens: dict  # predictor -> prompt tokens of those requests
    eval_max_sampled_tokens: int
    usd: dict  # labelling, training, evaluation, total
    prices_note: str

    def __str__(self) -> str:
        g = self.generation
        evaluated = ", ".join(f"{name} {n:,} requests ({self.eval_prompt_tokens[name]:,} prompt tokens)"
                              for name, n in self.eval_requests.items())
        return "\n".join([
            f"labelling  {g}",
            f"training   {self.student}: at most {self.train_tokens:,} tokens ({self.epochs} epochs)",
            f"evaluation {evaluated}; at most {self.eval_max_sampled_tokens:,} sampled tokens",
            f"cost       at most ${self.usd['total']:,.2f}: labelling ${self.usd['labelling']:,.2f}, training "
            f"${self.usd['training']:,.2f}, evaluation ${self.usd['evaluation']:,.2f} ({self.prices_note})",
        ])


def estimate_run(out, backend: str | None = None, quick: bool = False, queries=None, gold=None,
                 overwrite: bool = False, train_overrides: dict | None = None) -> RunEstimate:
    """Count what :func:`run_pipeline` with these arguments would ask, sampling, training and writing
    nothing (on Tinker a session is opened only to read the teacher's and the student's tokenizers).

    The models are asked for their tokenizers only. An ``out`` whose labelling is finished or
    half done counts only the requests still to make, as the run would; one the run would
    refuse raises the same ``DataError``.
    """
    from .generate import estimate
    from .labels import LABELS
    from .render import conversation, render_example

    out = Path(out)
    backend, _ = choose_backend(backend)
    _check_out(out, overwrite)
    query_rows, gold_rows = _inputs(queries, gold, quick)
    config = TrainConfig.for_backend(backend, quick=quick, **(train_overrides or {}))
    config.validate()
    service = connect(backend)
    models = ev.default_models(backend)
    teacher = service.create_sampling_client(base_model=models["teacher"]).result()
    generation = estimate(teacher, query_rows, out / "distill.jsonl", config=GenerateConfig(teacher_model=models["teacher"]),
                          overwrite=overwrite, teacher_name=models["teacher"])
    student_tok = service.create_sampling_client(base_model=config.base_model).result().get_tokenizer()
    texts = list(dict.fromkeys(r["text"] for r in query_rows if r["text"].strip()))
    # a row trains on its prompt and its answer, less the last token (nothing follows it to predict)
    answer = max(len(render_example(student_tok, conversation("hola", label)).completion_tokens) for label in LABELS)
    row_tokens = sum(ev.prompt_tokens_per_query(student_tok, texts, with_prompt=False)) + len(texts) * (answer - 1)
    gold_texts = [r["text"] for r in gold_rows]
    teacher_gold = sum(ev.prompt_tokens_per_query(teacher.get_tokenizer(), gold_texts, with_prompt=True))
    student_gold = sum(ev.prompt_tokens_per_query(student_tok, gold_texts, with_prompt=False))
    eval_requests = {"teacher": len(gold_texts), "base": len(gold_texts), "student": len(gold_texts)}
    eval_tokens = {"teacher": teacher_gold, "base": student_gold, "student": student_gold}
    eval_sampled = len(gold_texts) * (ev.TEACHER_MAX_TOKENS + 2 * ev.STUDENT_MAX_TOKENS)
    usd = {"labelling": ev.usd(ev.PRICES, teacher=generation.prompt_tokens, sampled=generation.max_sampled_tokens),
           "training": ev.usd(ev.PRICES, train=row_tokens * config.epochs),
           "evaluation": ev.usd(ev.PRICES, teacher=teacher_gold, student=2 * student_gold, sampled=eval_sampled)}
    usd["total"] = sum(usd.values())
    return RunEstimate(backend=backend, teacher=models["teacher"], student=config.base_model, generation=generation,
                       train_tokens=row_tokens * config.epochs, epochs=config.epochs, eval_requests=eval_requests,
                       eval_prompt_tokens=eval_tokens, eval_max_sampled_tokens=eval_sampled, usd=usd,
                       prices_note=ev.prices_note())


def summary_text(r: dict) -> str:
    """The lines ``run`` prints from report ``r``: accuracies, agreement, prompt tokens saved,
    gold-set size and wall time, and the offline note when offline."""
    lines = [
        f"teacher accuracy   {r['teacher_accuracy']:.4f}  ({r['teacher_model']})",
        f"student accuracy   {r['student_accuracy']:.4f}  ({r['student_model']}, no prompt)",
        f"agreement          {r['agreement']:.4f}  (student vs teacher; kappa {r['kappa']:.3f})",
        f"baseline accuracy  {r['baseline_accuracy']:.4f}  (char n-gram TF-IDF + logistic regression)",
        f"prompt tokens      {r['teacher_prompt_tokens']:.0f} -> {r['student_prompt_tokens']:.0f} per query "
        f"({r['teacher_prompt_tokens'] - r['student_prompt_tokens']:.0f} saved, ratio {r['prompt_token_ratio']:.3f})",
        f"pays back after    {_payback_text(r['payback'])}",
        f"gold set           n={r['n']}; wall time {r['seconds']:.0f} s",
    ]
    if r["offline"]:
        lines.append(OFFLINE_NOTE)
    return "\n".join(lines)


def _payback_text(p: dict) -> str:
    """When the student has paid for the run (labelling and training), in words."""
    when = f"{p['break_even_queries']:,} queries" if p["break_even_queries"] is not None else "never, at these prices"
    return f"{when} (one-off ${p['one_off_usd']:,.2f}; {p['prices_note']})"


def report_markdown(r: dict, metrics: dict) -> str:
    """``report.md`` from report ``r`` and each predictor's metrics: backend and models, a table of
    accuracy, macro-F1 and unparsed answers, agreement (by kind of query when known), prompt tokens,
    the confusion and cost pictures, training time."""
    rows = "\n".join(
        f"| {name} | {m['accuracy']:.4f} | {m.get('macro_f1', float('nan')):.4f} | {m.get('unparsed', 0)} |"
        for name, m in metrics.items()
    )
    note = f"\n> {OFFLINE_NOTE}\n" if r["offline"] else ""
    kinds = ""
    if r.get("agreement_by_kind"):
        lines = "\n".join(f"| {kind} | {k['n']} | {k['student']:.3f} | {k['baseline']:.3f} |"
                          for kind, k in sorted(r["agreement_by_kind"].items(), key=lambda kv: kv[1]["student"]))
        kinds = f"""
Agreement with the teacher by kind of query (the hardest first):

| kind | n | student | baseline |
|---|---:|---:|---:|
{lines}
"""
    return f"""# Prompt distillation report
{note}
Backend: **{r['backend']}** ({r['backend_reason']}). Teacher: `{r['teacher_model']}`. Student: `{r['student_model']}`.
Distillation data: {r['distillation_rows']} rows from {r['queries']} queries. Gold set: {r['n']} rows.

| predictor | accuracy | macro-F1 | unparsed |
|---|---:|---:|---:|
{rows}

Student–teacher agreement: **{r['agreement']:.4f}** (Cohen's kappa {r['kappa']:.3f}).
{kinds}
Prompt tokens per query: teacher {r['teacher_prompt_tokens']:.0f}, student {r['student_prompt_tokens']:.0f}
(ratio {r['prompt_token_ratio']:.3f}). The run cost ${r['payback']['labelling_usd']:,.2f} of labelling
({r['payback']['labelled_queries']:,} teacher requests) and ${r['payback']['training_usd']:,.2f} of training
({r['payback']['train_tokens']:,} tokens); the student pays that back after {_payback_text(r['payback'])}.

![confusion matrices](confusion.png)

![cost](cost.png)

Training: {r['training']}. Whole run: {r['seconds']:.0f} s.
Mistakes of teacher, student and baseline: `errors.md`.
"""
