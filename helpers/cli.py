"""The command line: ``python -m helpers generate|train|evaluate|run`` (the code the notebooks call).

Every command exits non-zero with a one-line reason on stderr for bad input
(file and line for bad data, the setting for a bad value or a bad option on the
command line), never a stack trace. A model name is checked against the
backend's list before anything is written. Re-running a command with the same
output resumes its own unfinished work; other existing outputs are kept unless
``--overwrite`` is given, and a command that fails removes the output folder it
created if it left nothing in it.
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import sys
from pathlib import Path

from tinker import TinkerError

from .backend import redact as _redact  # never an API key on the terminal, whatever an error quotes
from .dataio import DataError, is_temp_file, locate, read_conversations

STARTING_INTERRUPTED = "interrupted while starting: nothing was done"
# errors of writing that come without a file name (a full disk, a quota, a read-only or failing one)
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr, naming the option, and exit code 2
    (argparse's own prints its usage block first), e.g. ``error: --epochs: invalid int value:
    '2.5' (python -m helpers train --help lists the options)``. ``--help`` is argparse's as usual.

    Options a subcommand does not know are reported by that subcommand (argparse leaves them to
    the top-level parser, whose help does not list them).
    """

    def error(self, message: str):
        message = " ".join(str(message).split())
        if message.startswith("argument "):  # "argument --epochs: invalid int value: '2.5'"
            message = message[len("argument "):]
        self.exit(2, f"error: {_redact(message)} ({self.prog} --help lists the options)\n")

    def parse_args(self, args=None, namespace=None):
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            self._command_parser(parsed).error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed

    def _command_parser(self, parsed) -> argparse.ArgumentParser:
        """The subcommand's parser that parsed ``parsed``, else this one."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(parsed, action.dest, None) or "")
                if chosen is not None:
                    return chosen
        return self


# ------------------------------------------------------------------ train


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m helpers train``; those left out take :meth:`TrainConfig.for_backend`'s defaults."""
    p.add_argument("--data", required=True, help="distillation data (chat JSONL)")
    p.add_argument("--out", required=True, help="folder for checkpoints, progress.json and checkpoint.json")
    p.add_argument("--backend", choices=["local", "tinker"], default=None,
                   help="default: PD_BACKEND if set, else Tinker when TINKER_API_KEY is set, else local")
    p.add_argument("--model", default=None, help="student base model (default: the backend's)")
    p.add_argument("--rank", type=int, default=None,
                   help="LoRA rank (default 32); the local tiny models train all their weights and do not use it "
                        "(a local Hugging Face model gets LoRA adapters of this rank)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-4 on Tinker, 3e-3 locally)")
    p.add_argument("--schedule", choices=["constant", "linear", "cosine"], default=None,
                   help="how the learning rate falls to the end, after any warm-up (default linear)")
    p.add_argument("--epochs", type=int, default=None, help="passes over the data (default 4 on Tinker, 3 locally)")
    p.add_argument("--batch-size", type=int, default=None, help="examples per step (default 128 on Tinker, 32 locally)")
    p.add_argument("--seed", type=int, default=None, help="seed of the validation split, the batch order and the initial weights (default 0)")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="share of the data held out for validation loss and accuracy (default 0.05)")
    p.add_argument("--prompt-weight", type=float, default=None,
                   help="loss weight on the prompt side: the query's tokens and the chat markup (0 on Tinker; 0.5 for the local from-scratch student)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out (another run's progress, checkpoint and weights), which is put back "
                        "if the new one fails or is interrupted before its first checkpoint; other files are kept")


def train_main(args) -> int:
    """Run ``python -m helpers train``: fine-tune the student, print its last loss and validation accuracy.

    The same command again resumes an unfinished run from its last checkpoint (a finished one
    trains no more steps). An ``--out`` holding a run with other data or settings is refused
    unless ``--overwrite``. Returns 0; bad input raises ``DataError`` (``main`` prints it).
    """
    from .backend import check_model, choose_backend, connect
    from .train import TrainConfig, same_run, train

    backend, _ = choose_backend(args.backend)
    overrides = {field: getattr(args, option[2:].replace("-", "_")) for field, option in OPTIONS.items()}
    overrides = {field: value for field, value in overrides.items() if value is not None}
    config = TrainConfig.for_backend(backend, **overrides)
    try:
        config.validate()
    except DataError as e:  # named as the option the learner typed: --lr, not learning_rate
        raise DataError(as_option(str(e))) from None
    rows = read_conversations(args.data)
    out = Path(args.out)
    own_files = ("progress.json", "checkpoint.json", "weights")
    if recovered := recover_set_aside(out, own_files):
        print(recovered, file=sys.stderr)
    check_output_dir(out, args.overwrite, own_files)
    if not args.overwrite and same_run(out, rows, config) is False:
        raise DataError(f"{out}: holds a training run with other data or settings; "
                        "pass --overwrite to replace it, or choose another --out")
    service = connect(backend, store=out / "weights")
    check_model(service, config.base_model, use="train")  # the default too: another server may not offer it
    replaced = prepare_output_dir(out, args.overwrite, own_files)  # only now: a refused model or backend leaves no folder
    try:
        result = train(service, rows, config, out_dir=out, progress=True)
    except BaseException as e:
        # --overwrite: until the new run saves a checkpoint, the run it replaces is put back
        kept = replaced is not None and not (out / "progress.json").exists()
        if kept:
            replaced, aside = None, replaced  # never removed below, even if putting it back fails midway
            put_back(out, own_files, aside)
        if isinstance(e, DataError):  # a row the file let through but the model cannot take: name its line
            located = locate(e, args.data)
            raise DataError(f"{located}; the run it was to replace is kept in {out}" if kept else str(located)) from None
        if kept and not isinstance(e, KeyboardInterrupt):  # Ctrl-C has its own line (INTERRUPTED)
            e.add_note(f"the run it was to replace is kept in {out}")
        raise
    finally:
        if replaced is not None:
            shutil.rmtree(replaced, ignore_errors=True)
    last = result.validation[-1] if result.validation else {}
    accuracy = last.get("val_accuracy")
    print(f"{result.describe()}; final loss {result.history[-1]['loss'] if result.history else float('nan'):.4f}; "
          f"validation accuracy {'n/a' if accuracy is None else f'{accuracy:.4f}'}")
    print(f"checkpoint: {out / 'checkpoint.json'}")
    return 0


# train's options that set a TrainConfig field, by field
OPTIONS = {"base_model": "--model", "learning_rate": "--lr", "lr_schedule": "--schedule", "batch_size": "--batch-size",
           "val_fraction": "--val-fraction", "prompt_weight": "--prompt-weight", "rank": "--rank", "epochs": "--epochs",
           "seed": "--seed"}


def as_option(message: str) -> str:
    """A ``setting: <field> ...`` message of :meth:`TrainConfig.validate` with the field named as
    train's option (``--lr must be ...``); a field with no option stays as it is.

    >>> as_option("setting: learning_rate must be a finite number > 0, got 0.0")
    '--lr must be a finite number > 0, got 0.0'
    """
    field = message.removeprefix("setting: ").split(" ", 1)[0]
    return f"{OPTIONS[field]}{message[len('setting: ') + len(field):]}" if field in OPTIONS else message


def check_output_dir(out: Path, overwrite: bool, own_files: tuple[str, ...]) -> None:
    """Refuse a file, or (unless ``overwrite``) a folder that holds something else than this
    command's own files; change nothing."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if out.exists() and not overwrite:
        foreign = [p.name for p in out.iterdir() if p.name not in (*own_files, SET_ASIDE) and not is_temp_file(p.name)]
        if foreign:
            raise DataError(f"{out}: folder holds other files ({', '.join(sorted(foreign)[:3])}); use --overwrite or another --out")


# Where train --overwrite keeps the run it replaces until the new one saves a checkpoint. A fixed
# name, not a temporary one: a process killed outright (a closed terminal, out of memory) cannot
# put it back, so the next train in that folder does (recover_set_aside).
SET_ASIDE = ".replaced-run"


def recover_set_aside(out: Path, own_files: tuple[str, ...]) -> str | None:
    """After a ``train --overwrite`` that was killed outright: put back the run it had set aside
    if the new run saved no checkpoint, else let the new run stand (its checkpoint resumes).
    Returns a line saying what was put back, or None."""
    aside = out / SET_ASIDE
    if not aside.is_dir():
        return None
    if (out / "progress.json").exists():  # the new run got as far as a checkpoint: it replaced the old
        shutil.rmtree(aside)
        return None
    put_back(out, own_files, aside)
    return f"{out}: put back the run that an interrupted 'train --overwrite' had set aside"


def prepare_output_dir(out: Path, overwrite: bool, own_files: tuple[str, ...]) -> Path | None:
    """Refuse an existing folder that holds something else than this command's own files
    (:func:`check_output_dir`), then create it.

    With ``overwrite``, this command's own files are set aside, not removed: moved into a hidden
    folder in ``out`` (``SET_ASIDE``), which is returned (None when there were none), for the caller to remove
    once the new run has saved something, or to :func:`put_back` if it fails before. Any other
    files are left alone.
    """
    check_output_dir(out, overwrite, own_files)
    replaced = None
    present = [out / name for name in own_files if (out / name).exists() or (out / name).is_symlink()]
    if overwrite and present:
        replaced = out / SET_ASIDE
        replaced.mkdir()
        try:
            for path in present:
                os.replace(path, replaced / path.name)
        except BaseException:  # a move that failed midway is undone: the run stays where it was
            for moved in replaced.iterdir():
                os.replace(moved, out / moved.name)
            replaced.rmdir()
            raise
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{out}: cannot create folder ({e.strerror})") from None
    if not os.access(out, os.W_OK):
        raise DataError(f"{out}: folder is not writable")
    return replaced


def put_back(out: Path, own_files: tuple[str, ...], replaced: Path) -> None:
    """Undo :func:`prepare_output_dir`'s setting aside: what the new run wrote of this command's
    own files is removed, and the earlier run's files move back into ``out``."""
    for name in own_files:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    for path in replaced.iterdir():
        os.replace(path, out / path.name)
    replaced.rmdir()


# ------------------------------------------------------------------ run


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m helpers run``."""
    p.add_argument("--out", required=True, help="folder for data, student, baseline, metrics and report")
    p.add_argument("--backend", choices=["local", "tinker"], default=None,
                   help="default: PD_BACKEND if set, else Tinker when TINKER_API_KEY is set, else local")
    p.add_argument("--quick", action="store_true", help="a 1,200-query sample of the pool (locally 4 epochs in batches of 16; on Tinker 1 epoch)")
    p.add_argument("--queries", default=None, help="query pool (default data/queries.jsonl)")
    p.add_argument("--gold", default=None, help="gold set (default data/test_gold.jsonl)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an --out that holds other files (they are kept), and replace a distill.jsonl "
                        "labelled another way (one of this run's teacher, prompt, settings and queries is reused)")
    p.add_argument("--estimate", action="store_true",
                   help="print the requests and tokens the run would pay for, and their cost at the EXAMPLE prices; "
                        "sample, train and write nothing (on Tinker it opens a session only to read the models' "
                        "tokenizers)")


def run_main(args) -> int:
    """Run ``python -m helpers run``: the whole pipeline into ``--out``, then print its summary. Returns 0.

    With ``--estimate``, print what the run would ask of the models instead, and write nothing.
    """
    from .pipeline import estimate_run, run_pipeline

    if args.estimate:
        print(estimate_run(args.out, backend=args.backend, quick=args.quick, queries=args.queries, gold=args.gold,
                           overwrite=args.overwrite))
        return 0
    report = run_pipeline(args.out, backend=args.backend, quick=args.quick, queries=args.queries,
                          gold=args.gold, overwrite=args.overwrite)
    print(report["summary"])
    return 0


# ------------------------------------------------------------------ entry point

# What Ctrl-C leaves, per command: generate keeps every answer in its journal, train its
# checkpoints (every save_every steps), run both (its baseline, evaluations and report are
# redone anyway); evaluate keeps nothing and writes its files only at the end.
INTERRUPTED = {
    "generate": "interrupted; run the same command again to resume",
    "train": "interrupted; run the same command again to resume from the last checkpoint, if one was saved",
    "evaluate": "interrupted; nothing was saved: evaluation starts again on the next run",
    "run": "interrupted; run the same command again: labelling resumes, training from its last checkpoint if one "
           "was saved, and the later steps start again",
}


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m helpers`` parser: one subcommand each for generate, train, evaluate and run."""
    from . import evaluate, generate

    parser = CommandParser(prog="python -m helpers", description="Prompt distillation: generate, train, evaluate, run.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)
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
    """Parse ``argv`` (default ``sys.argv``) and run the command; return its exit code.

    0 on success; 2 with one line on stderr for bad input, a backend that cannot be used or an
    error from the server (never a traceback, never the API key); 130 after Ctrl-C, saying what
    the next run will do; ``generate`` gives 1 when every query was rejected. The Tinker
    sessions a command opened are then closed, telling the server how it ended.
    """
    from .backend import finish_sessions

    try:
        parser = build_parser()  # imports the commands' modules: a second or so
    except KeyboardInterrupt:
        print(STARTING_INTERRUPTED, file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    status = "errored"  # how the Tinker sessions the command opened ended, told to the server at the end
    new_folders = _folders_to_create(_output_folder(args))  # removed again if the command fails and leaves them empty
    try:
        code = int(args.func(args) or 0)
        status = "success" if code == 0 else "errored"
        return code
    except KeyboardInterrupt:
        status = "interrupted"
        print(INTERRUPTED.get(args.command, INTERRUPTED["run"]), file=sys.stderr)
        return 130
    except (DataError, ValueError, KeyError, OSError, RuntimeError, TinkerError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        if isinstance(e, OSError) and e.errno in _WRITE_ERRNOS and not e.filename and _output_folder(args):
            message = f"writing in {_output_folder(args)}: {message}"  # "[Errno 28] No space left on device" alone names no file
        if isinstance(e, TinkerError):  # from the server (a key revoked mid-run, a refused request): say so
            message = f"Tinker: {e.__class__.__name__}: {message}"
        for note in getattr(e, "__notes__", ()):  # what was kept (train --overwrite's earlier run), on the same line
            message += f"; {' '.join(str(note).split())}"
        print(f"error: {_redact(message)}", file=sys.stderr)
        return 2
    finally:
        if status != "success":
            _remove_empty(new_folders)
        finish_sessions(status)


def _output_folder(args) -> Path | None:
    """The folder a command writes into: ``--out`` (for ``generate``, the folder of its ``--out`` file)."""
    out = getattr(args, "out", None)
    if not out:
        return None
    return Path(out).parent if args.command == "generate" else Path(out)


def _folders_to_create(folder: Path | None) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, the deepest first."""
    missing: list[Path] = []
    if folder is None:
        return missing
    folder = Path(os.path.abspath(folder))
    try:
        while folder != folder.parent and not folder.exists() and not folder.is_symlink():
            missing.append(folder)
            folder = folder.parent
    except OSError:  # a parent that cannot be looked into: none of this command's to remove
        pass
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` (made by the command that failed) that holds no file, the
    empty folders inside it included. ``os.rmdir`` removes only an empty folder: a file written
    meanwhile, by this command or another, keeps its folder and the folders above it."""
    for folder in folders:
        if not folder.is_dir() or folder.is_symlink():
            continue
        for path, _, _ in os.walk(folder, topdown=False):
            try:
                os.rmdir(path)
            except OSError:  # not empty (a file, a symlink) or not ours to remove: kept
                pass
