"""Reading and writing the course's JSONL files, with errors that name file and line.

Every file the course reads is JSONL: one JSON object a line. Query files need
``"text"``; gold files also need ``"label"`` (one of the 13 labels); chat files
(distillation data) need ``"messages"``. Extra keys are kept. Anything else is
refused with a :class:`DataError` whose message is one line,
``path:line: what is wrong``, so that a command line can print it as it is.

Writes go to a temporary file that is renamed into place, so a finished file is
never left half-written, whatever kills the process.

Example
-------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "gold.jsonl"
>>> write_jsonl(p, [{"text": "Guten Morgen, wie geht es?", "label": "de"}])
>>> read_gold(p)[0]["label"]
'de'
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .labels import LABELS

MAX_LINE_BYTES = 1_000_000
"""Lines longer than this are refused: no query is a megabyte long, a broken file is."""


class DataError(ValueError):
    """A data file, or a setting, that cannot be used; the message is one line.

    ``example`` is the 1-based position of the row it is about, when it is about one row
    of data already read (training checks rows, not files): :func:`locate` turns that into
    the file's line.
    """

    def __init__(self, message: str, example: int | None = None):
        super().__init__(message)
        self.example = example


def locate(error: DataError, path: str | os.PathLike) -> DataError:
    """``error``, about row ``error.example`` of ``path``, said as ``path:line: what is wrong``.

    The error's own message reads ``... example N: what is wrong``. Rows are counted as
    :func:`iter_jsonl` yields them (blank lines skipped), so the line is the row's own
    line in the file. An error about no row, or about a row past the file's end, is
    returned as it is.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "chat.jsonl"
    >>> _ = p.write_text('\\n{"a": 1}\\n\\n{"a": 2}\\n')
    >>> str(locate(DataError("training data: example 2: too long", example=2), p)).endswith("chat.jsonl:4: too long")
    True
    """
    marker = f"example {error.example}: "
    if error.example is None or marker not in str(error):
        return error
    lines = [number for number, _ in iter_jsonl(path)]
    if not 1 <= error.example <= len(lines):
        return error
    return DataError(f"{path}:{lines[error.example - 1]}: {str(error).split(marker, 1)[1]}")


def _open_checked(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a JSONL file")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    return path


def read_json(path: str | os.PathLike, fix: str = "") -> Any:
    """The JSON value in ``path``. A file that cannot be read or parsed is a one-line
    :class:`DataError` naming it (and the line of malformed JSON), ending with ``fix`` when given
    (what to do about it)."""
    tail = f"; {fix}" if fix else ""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: malformed JSON ({e.msg}){tail}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: invalid UTF-8 at byte {e.start}{tail}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL file.

    Raises :class:`DataError` naming the file and line for invalid UTF-8, a line
    over :data:`MAX_LINE_BYTES`, malformed JSON, or a value that is not an object.
    """
    path = _open_checked(path)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a byte-order mark, as some editors save UTF-8
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(f"{path}:{number}: line is {len(raw):,} bytes, over the 1 MB limit")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{number}: invalid UTF-8 at byte {e.start}") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{number}: malformed JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            if "\\ud" in line.lower():  # a \uXXXX escape of a surrogate: only whole pairs are text
                try:
                    json.dumps(obj, ensure_ascii=False).encode("utf-8")
                except UnicodeEncodeError:
                    raise DataError(f"{path}:{number}: a lone surrogate escape (such as \\ud83d without its pair) "
                                    "is not text") from None
            yield number, obj


def _require_text(path, number, obj) -> None:
    text = obj.get("text")
    if not isinstance(text, str):
        raise DataError(f"{path}:{number}: missing \"text\" (a string)")


def read_queries(path: str | os.PathLike, allow_empty_text: bool = False) -> list[dict[str, Any]]:
    """Read a query file: objects with a string ``"text"``; returns the objects.

    Empty or whitespace-only texts are refused unless ``allow_empty_text`` (the
    generator counts and skips them instead). An empty file is an error. Other keys, a
    ``"label"`` included, are kept and not checked (the teacher labels the
    queries; a pool from elsewhere may carry labels of its own, such as ``"pt"``); files
    whose labels are scored are read with :func:`read_gold`, which checks them.
    """
    rows = []
    for number, obj in iter_jsonl(path):
        _require_text(path, number, obj)
        if not allow_empty_text and not obj["text"].strip():
            raise DataError(f"{path}:{number}: empty \"text\"")
        rows.append(obj)
    if not rows:
        raise DataError(f"{path}: no rows (empty file)")
    return rows


def read_gold(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a gold-labelled file: ``"text"`` and ``"label"`` in the 13 labels."""
    rows = []
    for number, obj in iter_jsonl(path):
        _require_text(path, number, obj)
        if not obj["text"].strip():
            raise DataError(f"{path}:{number}: empty \"text\"")
        if "label" not in obj:
            raise DataError(f"{path}:{number}: missing \"label\"")
        if obj["label"] not in LABELS:
            raise DataError(
                f"{path}:{number}: unknown label {obj['label']!r}; expected one of {' '.join(LABELS)}"
            )
        rows.append(obj)
    if not rows:
        raise DataError(f"{path}: no rows (empty file)")
    return rows


def weight_problem(row: dict) -> str | None:
    """What is wrong with a row's optional ``"weight"`` (a finite number >= 0), or None.

    >>> weight_problem({"weight": -3})
    '"weight" must be a finite number >= 0, got -3'
    >>> weight_problem({}) is None
    True
    """
    weight = row.get("weight", 1.0)
    try:  # an int too large for a float (JSON's 1e400 written out) makes isfinite raise OverflowError
        finite = isinstance(weight, int | float) and math.isfinite(weight)
    except OverflowError:
        finite = False
    if isinstance(weight, bool) or not finite or weight < 0:
        shown = repr(weight) if len(repr(weight)) <= 40 else f"{repr(weight)[:20]}... ({len(repr(weight))} characters)"
        return f'"weight" must be a finite number >= 0, got {shown}'
    return None


def conversation_problem(row: Any) -> str | None:
    """What keeps a chat row from being one training example, or None.

    A row is ``{"messages": [...]}`` with exactly one user turn followed by exactly one
    assistant turn whose content is one of the 13 labels; messages without a role (notes)
    are ignored. Anything more would be dropped by training without a word: a system turn
    (the student is trained without a prompt; that is the point), an earlier exchange, or a
    question after the answer, which would pair the answer with the wrong question. An
    optional ``"weight"`` must be a finite number >= 0 (see :func:`weight_problem`).

    >>> conversation_problem({"messages": [{"role": "user", "content": "hola"}, {"role": "assistant", "content": "es"}]})
    >>> conversation_problem({"messages": [{"role": "user", "content": "hola"}, {"role": "assistant", "content": "es"},
    ...                                    {"role": "user", "content": "hi"}]})
    'needs one user turn followed by one assistant turn, got user, assistant, user'
    """
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return 'missing "messages" (a list of objects)'
    roles = [m["role"] for m in messages if m.get("role") is not None]
    if roles == ["system", "user", "assistant"]:
        return ("has a system turn: the student is trained without a prompt (that is what distillation "
                "removes), so remove it")
    if roles != ["user", "assistant"]:
        return f"needs one user turn followed by one assistant turn, got {', '.join(map(str, roles)) or 'no turns'}"
    if not all(isinstance(m.get("content"), str) for m in messages if m.get("role") is not None):
        return "message content must be a string"
    answer = next(m["content"] for m in messages if m.get("role") == "assistant")
    if answer.strip() not in LABELS:
        return f"assistant answer {answer.strip()!r} is not one of the {len(LABELS)} labels"
    return weight_problem(row)


def read_conversations(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read distillation data in the chat format: ``{"messages": [...]}`` per line.

    Each row must be one training example as :func:`conversation_problem` says: one user
    turn, then one assistant turn whose content is one of the 13 labels, and an optional
    ``"weight"`` (the row's weight in the loss, 1 when absent), a finite number >= 0.
    """
    rows = []
    for number, obj in iter_jsonl(path):
        if (problem := conversation_problem(obj)) is not None:
            raise DataError(f"{path}:{number}: {problem}")
        rows.append(obj)
    if not rows:
        raise DataError(f"{path}: no rows (empty file)")
    return rows


def is_whole(x) -> bool:
    """A whole number (``int``, numpy's too; not a bool): what a count or a seed setting must be."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def check_settings(config, checks: Iterable[tuple[bool, str]]) -> None:
    """Raise ``DataError("setting: ...")`` with the message of the first check that failed;
    then turn the config's numpy numbers (``np.int64(32)`` from a grid over ``np.array``) into
    Python's, which every later step can write as JSON and compare with the saved run's."""
    for ok, message in checks:
        if not ok:
            raise DataError(f"setting: {message}")
    for name, value in vars(config).items():
        if isinstance(value, numbers.Number) and not isinstance(value, (bool, int, float)) and hasattr(value, "item"):
            setattr(config, name, value.item())


def is_number(x) -> bool:
    """A finite real number (not a bool): what a rate or a weight setting must be."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def text_list(items: Iterable, what: str = "texts") -> list[str]:
    """``items`` as a list of strings: each item a string, or an object with a string ``"text"``.

    A single string (which would count as a list of characters), a dict, or an item that is
    neither gets a one-line :class:`DataError` naming ``what`` and the item.

    >>> text_list(["hallo", {"text": "hola", "label": "es"}])
    ['hallo', 'hola']
    """
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise DataError(f"{what}: expected a list of strings or of objects with \"text\"")
    texts = []
    for i, item in enumerate(items, start=1):
        text = item.get("text") if isinstance(item, Mapping) else item
        if not isinstance(text, str):
            raise DataError(f"{what}: item {i} is not a string or an object with a string \"text\"")
        texts.append(text)
    return texts


def json_safe(obj: Any) -> Any:
    """``obj`` in plain JSON values: NaN and infinity become None (JSON has no such numbers),
    numpy's arrays and numbers (anything with ``tolist``) Python's lists and numbers.

    >>> json_safe({"kappa": float("nan"), "counts": (1, 2)})
    {'kappa': None, 'counts': [1, 2]}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, str | bytes):
        return json_safe(obj.tolist())
    return obj


def dumps(obj: dict[str, Any]) -> str:
    """One JSONL line (no newline): UTF-8 kept readable, key order kept."""
    return json.dumps(obj, ensure_ascii=False)


def _umask_mode() -> int:
    """The mode a new file gets (0o666 less the umask), without changing the umask.

    Linux reports the umask in ``/proc/self/status``; reading it there leaves no moment in
    which another thread could create a file under a umask of 0. Elsewhere the umask is
    set and put back, the only portable way to read it.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def temp_name(path: Path) -> str:
    """Prefix for a temporary sibling of ``path``: hidden, and carrying this process's pid."""
    return f".{path.name}.{os.getpid()}-"


_TEMP_NAME = re.compile(r"\..+\.(\d+)-[A-Za-z0-9_]+\.tmp")  # temp_name(path), a random part, ".tmp"


def is_temp_file(name: str) -> bool:
    """Whether ``name`` is one of this package's temporary files (``temp_name``): a folder check
    must not count one, left by a writer killed mid-write, as someone else's file."""
    return _TEMP_NAME.fullmatch(name) is not None


def temp_beside(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path`` (descriptor, name), named by :func:`temp_name`, after
    sweeping the folder's orphans."""
    sweep_orphans(path.parent)
    return tempfile.mkstemp(dir=path.parent, prefix=temp_name(path), suffix=".tmp")


def sweep_orphans(folder: Path) -> None:
    """Remove temporary files and folders left in ``folder`` by a process killed mid-write.

    Every temporary name carries its writer's pid (see ``temp_name``); one whose writer is
    gone is an orphan: the finished file it was meant to become was never renamed into place.
    Only names of that exact shape (``.NAME.PID-RANDOM.tmp``) are considered: another
    program's hidden ``.tmp`` files are left alone.
    """
    for tmp in Path(folder).glob(".*.tmp"):
        match = _TEMP_NAME.fullmatch(tmp.name)
        if match is None:  # not one of ours (an editor's, ...): left alone
            continue
        pid = int(match.group(1))
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        except PermissionError:
            pass  # another user's live process


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as JSONL atomically: a temporary file in the same folder, then a rename.

    Before writing, the orphans of killed writers in that folder are removed (:func:`sweep_orphans`).
    """
    path = Path(path)
    if isinstance(rows, str | bytes | Mapping):  # a dict's keys, or a string's letters, are not rows
        raise DataError(f"{path}: rows must be a list of JSON objects, got a single {type(rows).__name__}")

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            for i, row in enumerate(rows, start=1):
                if not isinstance(row, Mapping):  # every reader here expects an object per line
                    raise DataError(f"{path}: row {i} is not a JSON object (got {type(row).__name__}); nothing was written")
                f.write(dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    write_with(path, write)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (temporary file, then rename), sweeping orphans first as
    :func:`write_jsonl` does."""
    write_with(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_with(path: str | os.PathLike, write: Callable[[str], Any]) -> Path:
    """Write ``path`` atomically with ``write(name)``, a writer that takes a file name (a
    figure's ``savefig``, ``joblib.dump``): it writes a temporary file beside ``path``, which is
    then given the usual mode and renamed into place, or removed if the writer fails. Returns
    the path."""
    path = check_writable(path)
    fd, tmp = temp_beside(path)  # named with this process's pid: swept if it is killed mid-write
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _umask_mode())  # mkstemp makes 0600; a finished file gets the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_writable(path: str | os.PathLike) -> Path:
    """Make the parent folder of ``path`` and check a file can be written there.

    Raises :class:`DataError` with a one-line reason otherwise.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{path}: cannot create folder {path.parent} ({e.strerror})") from None
    if not os.access(path.parent, os.W_OK):
        raise DataError(f"{path}: folder {path.parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise DataError(f"{path}: file is not writable")
    return path
