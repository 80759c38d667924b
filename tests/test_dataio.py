"""helpers.dataio: reading the JSONL files with one-line errors, and writing atomically."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.dataio import DataError, read_conversations, read_gold, read_queries, write_jsonl


def _write(tmp_path, name, content: bytes):
    p = tmp_path / name
    p.write_bytes(content)
    return p


@pytest.mark.parametrize("content,message", [
    (b'{"text": "hi", "label": "de"}\n{"text": "x", "label": "xx"}\n', ":2: unknown label 'xx'"),
    (b'{"text": "hi", "label": "de"}\n{"text": "x"\n', ":2: malformed JSON"),
    (b'{"text": "hi"}\n', ":1: missing \"label\""),
    (b'["a"]\n', ":1: expected a JSON object"),
    (b'{"label": "de"}\n', ":1: missing \"text\""),
    (b'{"text": "  ", "label": "de"}\n', ":1: empty \"text\""),
    (b'{"text": "caf\xe9", "label": "fr"}\n', ":1: invalid UTF-8"),
    (b"", "no rows (empty file)"),
    (b'{"text": "' + b"a" * 1_000_001 + b'", "label": "en"}\n', ":1: line is"),
])
def test_gold_loading_errors_name_file_and_line(tmp_path, content, message):
    p = _write(tmp_path, "gold.jsonl", content)
    with pytest.raises(DataError) as err:
        read_gold(p)
    assert message in str(err.value) and str(p) in str(err.value)
    assert "\n" not in str(err.value)


def test_a_byte_order_mark_is_not_part_of_the_first_row(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps({"text": "hola"}).encode() + b"\n" + json.dumps({"text": "hi"}).encode() + b"\n")
    assert [r["text"] for r in read_queries(p)] == ["hola", "hi"]


def test_a_query_file_keeps_other_keys_and_labels_it_does_not_score(tmp_path):
    """Queries are only "text" for the teacher: a pool from elsewhere may carry its
    own labels (Portuguese as "pt") and other keys; they are kept, not refused."""
    p = tmp_path / "q.jsonl"
    p.write_text('{"text": "ola mundo", "label": "pt", "source": "mine"}\n{"text": "hi", "label": null}\n')
    assert read_queries(p) == [{"text": "ola mundo", "label": "pt", "source": "mine"}, {"text": "hi", "label": None}]


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        read_queries(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        read_queries(tmp_path / "nope.jsonl")


def test_conversations_are_checked(tmp_path):
    good = {"messages": [{"role": "user", "content": "hola"}, {"role": "assistant", "content": "es"}]}
    write_jsonl(tmp_path / "ok.jsonl", [good])
    assert read_conversations(tmp_path / "ok.jsonl") == [good]
    bad = {"messages": [{"role": "assistant", "content": "es"}]}
    (tmp_path / "bad.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=":2: needs one user turn followed by one assistant turn, got assistant$"):
        read_conversations(tmp_path / "bad.jsonl")
    # a note without a role is ignored, as documented, content or not
    noted = {"messages": [good["messages"][0], {"note": "checked by hand"}, good["messages"][1]]}
    write_jsonl(tmp_path / "noted.jsonl", [noted])
    assert read_conversations(tmp_path / "noted.jsonl") == [noted]
    # a weight too large for a float is a bad weight on its line, not an OverflowError
    (tmp_path / "huge.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(good)[:-1] + ', "weight": 1' + "0" * 400 + "}\n")
    with pytest.raises(DataError, match=r':2: "weight" must be a finite number >= 0, got 1000000000'):
        read_conversations(tmp_path / "huge.jsonl")


def test_write_is_atomic(tmp_path):
    p = tmp_path / "out.jsonl"
    write_jsonl(p, [{"text": "a"}])

    def broken():
        yield {"text": "b"}
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(p, broken())
    assert p.read_text() == '{"text": "a"}\n'  # the old file is intact, no half-written one
    assert not list(tmp_path.glob("*.tmp"))


def test_orphaned_temporary_files_of_a_killed_writer_are_swept(tmp_path):
    """A writer killed between 'write the temporary file' and 'rename' leaves an orphan;
    the next write in that folder removes it, and leaves a live writer's file alone."""
    from helpers.dataio import temp_name, write_jsonl

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = tmp_path / "out.jsonl"
    orphan_file = tmp_path / f"{temp_name(target).replace(str(os.getpid()), str(dead.pid))}abc.tmp"
    orphan_dir = tmp_path / f".step-000004.{dead.pid}-deadbeef.tmp"
    live = tmp_path / f".other.jsonl.{os.getppid()}-abc.tmp"
    foreign = tmp_path / f".editor.{dead.pid}.tmp"  # not a name of ours, though it ends in a dead pid
    for path in (orphan_file, live, foreign):
        path.write_text("half")
    orphan_dir.mkdir()
    (orphan_dir / "weights.pt").write_text("half")
    write_jsonl(target, [{"a": 1}])
    assert target.read_text() == '{"a": 1}\n'
    assert not orphan_file.exists() and not orphan_dir.exists()
    assert live.exists() and foreign.exists()


def _write_bytes_in_place(path, data: bytes) -> None:
    """A writer like savefig or joblib.dump: it opens the name it is given, which already
    exists (mkstemp made it, mode 0600), so the file keeps that mode unless the writer fixes it."""
    from helpers.dataio import write_with

    write_with(path, lambda tmp: Path(tmp).write_bytes(data))


@pytest.mark.parametrize("writer", ["write_text", "write_jsonl", "write_with"])
def test_written_files_get_the_usual_mode_without_touching_the_umask(tmp_path, monkeypatch, writer):
    """Every atomic writer chmods its temporary file to 0o666 less the umask (mkstemp makes it
    0600, which a figure or a saved baseline kept before); on Linux the umask is read from
    /proc, so no other thread ever runs under a umask of 0."""
    from helpers import dataio

    write = {
        "write_text": lambda p: dataio.write_text(p, "hello"),
        "write_jsonl": lambda p: dataio.write_jsonl(p, [{"a": 1}]),
        "write_with": lambda p: _write_bytes_in_place(p, b"png"),
    }[writer]
    old = os.umask(0o027)
    try:
        if sys.platform.startswith("linux"):
            def refuse(mask):
                raise AssertionError("os.umask called while writing")

            monkeypatch.setattr(os, "umask", refuse)
        write(tmp_path / "f.txt")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o640
    assert [f.name for f in tmp_path.iterdir()] == ["f.txt"]  # no temporary file left

