"""What the notebooks share: where their files go, and building what an earlier notebook would have.

Each notebook runs on its own. If notebook 02's distillation data or notebook
03's student is missing, :func:`ensure_distillation_data` and
:func:`ensure_student` make them through the same helpers (with quick settings
offline), so a learner can open any notebook first.

Files go to ``PD_WORKDIR`` (default ``runs/course`` in the repository), the data
and the student in one folder per backend and size (:func:`run_dir`), so that
what an offline run made never stands in for a Tinker run's, or a quick sample
for the full pool; figures also to ``$PD_BUILD/figures`` when ``PD_BUILD`` is set
(``make run`` sets it).

Example
-------
>>> run_name("local", quick=True)
'local-quick'
"""

from __future__ import annotations

import os
from pathlib import Path

from .backend import context_length
from .dataio import DataError, read_conversations, read_queries

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
QUICK_QUERIES = 1200  # offline, a quick sample of the pool: about a minute of training


def _folder_setting(name: str) -> Path | None:
    """A folder named by the setting ``name``: None when unset or empty; ``~`` expanded; a
    relative path taken from the repository root, since the notebooks run in ``notebooks/``
    and the commands from the root, and one setting must name one folder for both."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else ROOT / path


def workdir() -> Path:
    """The folder the notebooks share (``PD_WORKDIR``, default ``runs/course``)."""
    path = _folder_setting("PD_WORKDIR") or ROOT / "runs" / "course"
    path.mkdir(parents=True, exist_ok=True)
    return path


def quick_setting() -> bool | None:
    """``PD_QUICK`` from the environment: True for 1, False for 0, None when unset."""
    value = os.environ.get("PD_QUICK", "").strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise DataError(f"setting: PD_QUICK must be 1 or 0, got {value!r}")


def is_quick(service, quick: bool | None = None) -> bool:
    """``quick`` as given; else ``PD_QUICK`` when set; else the course's default: the quick
    sample offline, the full pool on Tinker. ``PD_QUICK=1`` makes a first Tinker run cheap
    (1,200 queries, one epoch); ``PD_QUICK=0`` runs the full pool offline."""
    if quick is not None:
        return bool(quick)
    setting = quick_setting()
    return is_offline(service) if setting is None else setting


def run_dir(service, quick: bool | None = None) -> Path:
    """``workdir()/<backend>`` (``local``, ``tinker``), with ``-quick`` for the quick sample.

    ``quick`` defaults as in :func:`is_quick`, so notebooks find offline ``local-quick/``
    and with a key ``tinker/`` (``tinker-quick/`` with ``PD_QUICK=1``).
    """
    path = workdir() / run_name(service.backend, is_quick(service, quick))
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_name(backend: str, quick: bool) -> str:
    """``local``, ``tinker``, with ``-quick`` for the quick sample: one folder name per backend
    and size, for the notebooks' work (:func:`run_dir`) and ``make run``'s pipeline."""
    return backend + ("-quick" if quick else "")


def figure_path(name: str) -> Path | None:
    """Where to save a figure for ``make run`` (``$PD_BUILD/figures/name``), or None."""
    build = _folder_setting("PD_BUILD")
    if build is None:
        return None
    path = build / "figures" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save(fig, name: str, service=None) -> None:
    """Save ``fig`` under ``$PD_BUILD/figures`` when running under ``make run``; else nothing.

    Given the ``service`` whose results it shows, an offline one, the figure first gets the
    offline note on top (:func:`helpers.plots.mark_offline`), on screen as well as in the file.
    """
    if service is not None:
        from .plots import mark_offline

        mark_offline(fig, is_offline(service))
    path = figure_path(name)
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")


def is_offline(service) -> bool:
    """True for the local backend's service client (:func:`helpers.connect` sets ``backend``)."""
    return getattr(service, "backend", None) == "local"


def backend_note(service) -> str:
    """One sentence saying what the teacher and student are in this run."""
    if is_offline(service):
        return ("Offline mode: the teacher is the rule-based stand-in (the prompt's policy on top of the "
                "lingua detector) and the student a tiny local model; numbers below are not LLM results.")
    return "Tinker mode: teacher and student are LLMs served by Tinker."


def query_pool(quick: bool) -> list[dict]:
    """The distillation pool; with ``quick``, an even sample that keeps the mix of kinds."""
    rows = read_queries(DATA / "queries.jsonl")
    return even_sample(rows, QUICK_QUERIES) if quick else rows


def even_sample(rows: list, n: int) -> list:
    """``n`` rows spread evenly over the whole of ``rows`` (all of them if there are no more than
    ``n``), so the sample keeps the pool's mix of kinds and languages however the pool is ordered.

    >>> even_sample(list(range(10)), 4)
    [0, 2, 5, 7]
    """
    if len(rows) <= n:
        return list(rows)
    return [rows[i * len(rows) // n] for i in range(n)]


def _distillation_run(service, quick: bool | None) -> dict:
    """The arguments of the course's one generation run (notebook 02, ``ensure_distillation_data``)."""
    from .evaluate import default_models
    from .generate import GenerateConfig

    quick = is_quick(service, quick)
    model = default_models(service.backend)["teacher"]
    return {"queries": query_pool(quick), "out_path": run_dir(service, quick) / "distill.jsonl",
            "config": GenerateConfig(teacher_model=model), "teacher_name": model}


def _teacher(service, run: dict):
    return service.create_sampling_client(base_model=run["teacher_name"]).result()


def _retries(service, run: dict, retry_failed: bool) -> int:
    """The failed requests of the course's finished labelling that a rerun would ask again (0
    unless ``retry_failed``; asks the teacher nothing)."""
    from .generate import failed_requests, journal_path

    if not (retry_failed and journal_path(run["out_path"]).exists()):  # else no teacher client is opened
        return 0
    return failed_requests(_teacher(service, run), **run)


def ensure_distillation_data(service, quick: bool | None = None, progress: bool = True,
                             retry_failed: bool = False) -> Path:
    """The teacher's labels of the pool at ``run_dir(service, quick)/distill.jsonl``, made if missing.

    Resumes an interrupted run. A finished file is kept as it is, whatever settings made it (a
    learner's earlier run is not paid for twice); with ``retry_failed`` (notebook 02), the
    queries whose requests failed are asked again. Notebooks 03 to 05 use the file as it is,
    so the data never changes under a student trained on it.
    """
    from .generate import generate

    run = _distillation_run(service, quick)
    if not run["out_path"].exists() or _retries(service, run, retry_failed):
        generate(_teacher(service, run), progress=progress, max_context=context_length(service, run["teacher_name"]), **run)
    return run["out_path"]


def distillation_estimate(service, quick: bool | None = None, retry_failed: bool = False):
    """What :func:`ensure_distillation_data` (with the same ``retry_failed``) still has to ask the
    teacher (a ``GenerateEstimate``), asking nothing."""
    from .generate import GenerateEstimate, estimate

    run = _distillation_run(service, quick)
    if run["out_path"].exists() and not _retries(service, run, retry_failed):  # kept as it is: nothing to ask
        distinct = len({query["text"] for query in run["queries"] if query["text"].strip()})
        return GenerateEstimate(run["teacher_name"], distinct, answered=distinct, requests=0, prompt_tokens=0,
                                max_sampled_tokens=0)
    return estimate(_teacher(service, run), **run)


def student_config(service, rows, quick: bool | None = None):
    """The settings of the course's student: the backend's recipe, validated about twice per epoch.

    Notebook 03 and :func:`ensure_student` (notebook 04 run first) train with these, so
    whichever runs second finds the other's run in ``student/`` and reuses it: settings are
    part of a run's fingerprint, and other settings would train the student again from the
    start (on Tinker, a second paid run).
    """
    from .train import TrainConfig

    config = TrainConfig.for_backend(service.backend, quick=is_quick(service, quick))
    config.eval_every = max(1, len(rows) // (2 * config.batch_size))  # steps: about twice per epoch
    return config


def ensure_student(service, quick: bool | None = None, progress: bool = True) -> Path:
    """A trained student at ``run_dir(service, quick)/student`` (``checkpoint.json``), trained if missing."""
    from .train import train

    quick = is_quick(service, quick)
    folder = run_dir(service, quick) / "student"
    if (folder / "checkpoint.json").exists():
        return folder
    rows = read_conversations(ensure_distillation_data(service, quick, progress))
    config = student_config(service, rows, quick)
    store_service = service
    if is_offline(service):
        from .backend import connect

        store_service = connect("local", store=folder / "weights")
    train(store_service, rows, config, out_dir=folder, progress=progress)
    return folder


def distillation_payback(service, cost: dict, prices: dict | None = None, quick: bool | None = None) -> dict:
    """:func:`helpers.evaluate.run_payback` of the course's own run: what notebooks 02 and 03 spent.

    The teacher's requests and the tokens of its answers come from ``distill.jsonl``'s
    summary, the tokens trained from the student's record (``student/progress.json``); a
    student trained before steps recorded their tokens gets an estimate, and
    ``train_tokens_estimated`` says so.
    """
    import json

    from .evaluate import run_payback
    from .train import finished_run_record

    folder = run_dir(service, quick)
    summary_path = folder / "distill.jsonl.summary.json"
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if not {"distinct", "completion_tokens_per_query"} <= set(summary):
            raise KeyError("distinct")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{summary_path}: cannot read the generation summary ({e.__class__.__name__}); "
                        "run notebook 02 (or helpers.course.ensure_distillation_data) first") from None
    student = folder / "student"
    if not (student / "checkpoint.json").exists() or not (student / "progress.json").exists():
        raise DataError(f"{student}: no finished student with its training record; run notebook 03 "
                        "(or helpers.course.ensure_student) first")
    progress = finished_run_record(student)
    if progress is None:  # a run with other settings, started after and not finished: not the student scored
        raise DataError(f"{student}: progress.json records another run than the finished student in checkpoint.json "
                        "(other settings, not finished); run notebook 03's training to its end")
    return run_payback(cost, summary, progress["history"], progress["fingerprint"]["config"]["batch_size"], prices)


def describe_payback(paid: dict, service=None) -> str:
    """Two lines for a notebook: the one-off cost of :func:`distillation_payback`, and when it pays back.

    >>> print(describe_payback({"labelled_queries": 1200, "teacher_answer_tokens": 34.8, "labelling_usd": 0.8,
    ...     "train_tokens": 300000, "train_tokens_estimated": False, "training_usd": 0.18, "teacher_usd_per_query": 6.4e-4,
    ...     "student_usd_per_query": 1.2e-5, "break_even_queries": 1567, "prices_note": "EXAMPLE prices"}))
    one-off: 1,200 teacher requests, each writing 35 tokens, $0.80; training on 300,000 tokens, $0.18
    a million queries cost $640.00 with the teacher, $12.00 with the student: the student has paid for itself after 1,567 queries (EXAMPLE prices)
    """
    estimated = " (estimated)" if paid["train_tokens_estimated"] else ""
    after = (f"the student has paid for itself after {paid['break_even_queries']:,} queries"
             if paid["break_even_queries"] is not None else "the student never pays for itself at these prices")
    offline = "; offline token counts, not an LLM's" if service is not None and is_offline(service) else ""
    return (f"one-off: {paid['labelled_queries']:,} teacher requests, each writing {paid['teacher_answer_tokens']:.0f} "
            f"tokens, ${paid['labelling_usd']:.2f}; training on {paid['train_tokens']:,} tokens{estimated}, "
            f"${paid['training_usd']:.2f}\n"
            f"a million queries cost ${1e6 * paid['teacher_usd_per_query']:,.2f} with the teacher, "
            f"${1e6 * paid['student_usd_per_query']:,.2f} with the student: {after} ({paid['prices_note']}{offline})")
