"""The command line: ``python -m helpers generate|train|evaluate|run`` (the code the notebooks call).

Every command exits non-zero with a one-line reason on stderr for bad input
(file and line for bad data, the setting for a bad value), never a stack trace.
Re-running a command with the same output resumes its own unfinished work;
other existing outputs are kept unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from tinker import TinkerError

from .dataio import DataError, read_conversations, write_text


def _redact(message: str) -> str:
    """Never let an API key reach the terminal, whatever an error message quotes
    (:func:`helpers.backend.redact`, which generation's recorded errors use too)."""
    from .backend import redact

    return redact(message)


# ------------------------------------------------------------------ train


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="distillation data (chat JSONL)")
    p.add_argument("--out", required=True, help="folder for checkpoints, progress.json and checkpoint.json")
    p.add_argument("--backend", choices=["local", "tinker"], default=None)
    p.add_argument("--model", default=None, help="student base model (default: the backend's)")
    p.add_argument("--rank", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--schedule", choices=["constant", "linear", "cosine"], default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--val-fraction", type=float, default=None)
    p.add_argument("--prompt-weight", type=float, default=None,
                   help="loss weight on the prompt side: the query's tokens and the chat markup (0 on Tinker; 0.5 for the local from-scratch student)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing, different output folder")


def train_main(args) -> int:
    from .backend import choose_backend, connect
    from .train import TrainConfig, train

    backend, _ = choose_backend(args.backend)
    overrides = {k: v for k, v in {
        "base_model": args.model, "rank": args.rank, "learning_rate": args.lr, "lr_schedule": args.schedule,
        "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed, "val_fraction": args.val_fraction,
        "prompt_weight": args.prompt_weight,
    }.items() if v is not None}
    config = TrainConfig.for_backend(backend, **overrides)
    config.validate()
    rows = read_conversations(args.data)
    out = Path(args.out)
    prepare_output_dir(out, args.overwrite, own_files=("progress.json", "checkpoint.json", "weights"))
    service = connect(backend, store=out / "weights")
    result = train(service, rows, config, out_dir=out)
    last = result.validation[-1] if result.validation else {}
    print(f"trained {config.base_model} for {len(result.history)} steps in {result.seconds:.0f} s; "
          f"final loss {result.history[-1]['loss'] if result.history else float('nan'):.4f}; "
          f"validation accuracy {last.get('val_accuracy', float('nan')):.4f}")
    print(f"checkpoint: {out / 'checkpoint.json'}")
    return 0


def prepare_output_dir(out: Path, overwrite: bool, own_files: tuple[str, ...]) -> None:
    """Refuse an existing folder that holds something else than this command's own files.

    With ``overwrite``, this command's own files are removed and any others are left alone.
    """
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        foreign = [p.name for p in out.iterdir() if p.name not in own_files]
        if foreign and not overwrite:
            raise DataError(f"{out}: folder holds other files ({', '.join(sorted(foreign)[:3])}); use --overwrite or another --out")
        if overwrite:
            for name in own_files:
                path = out / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{out}: cannot create folder ({e.strerror})") from None
    if not os.access(out, os.W_OK):
        raise DataError(f"{out}: folder is not writable")


# ------------------------------------------------------------------ run


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="folder for data, student, baseline, metrics and report")
    p.add_argument("--backend", choices=["local", "tinker"], default=None)
    p.add_argument("--quick", action="store_true", help="a 1,200-query sample of the pool (locally 4 epochs in batches of 16; on Tinker 1 epoch)")
    p.add_argument("--queries", default=None, help="query pool (default data/queries.jsonl)")
    p.add_argument("--gold", default=None, help="gold set (default data/test_gold.jsonl)")
    p.add_argument("--overwrite", action="store_true")


def run_main(args) -> int:
    from .pipeline import run_pipeline

    report = run_pipeline(args.out, backend=args.backend, quick=args.quick, queries=args.queries,
                          gold=args.gold, overwrite=args.overwrite)
    print(report["summary"])
    return 0


# ------------------------------------------------------------------ entry point


def build_parser() -> argparse.ArgumentParser:
    from . import evaluate, generate

    parser = argparse.ArgumentParser(prog="python -m helpers", description="Prompt distillation: generate, train, evaluate, run.")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="label queries with the teacher (distillation data)")
    generate.add_arguments(g)
    g.set_defaults(func=generate.main)
    t = sub.add_parser("train", help="fine-tune the student on distillation data")
    add_train_arguments(t)
    t.set_defaults(func=train_main)
    e = sub.add_parser("evaluate", help="metrics and confusion matrix of a predictor on a gold set")
    evaluate.add_arguments(e)
    e.set_defaults(func=evaluate.main)
    r = sub.add_parser("run", help="the whole pipeline: generate, train, evaluate, report")
    add_run_arguments(r)
    r.set_defaults(func=run_main)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except (DataError, ValueError, KeyError, OSError, RuntimeError, TinkerError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        if isinstance(e, TinkerError):  # from the server (a key revoked mid-run, a refused request): say so
            message = f"Tinker: {e.__class__.__name__}: {message}"
        print(f"error: {_redact(message)}", file=sys.stderr)
        return 2


def dump_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1, ensure_ascii=False))
