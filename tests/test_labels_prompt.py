"""The answer parser, the teacher prompt's rules, and data loading errors."""

import json

import pytest

from helpers.dataio import DataError, read_conversations, read_gold, read_queries, write_jsonl
from helpers.labels import LABELS, check_label, parse_answer
from helpers.prompt import (
    RULE_NAMES,
    SHORT_PROMPT,
    active_rules,
    build_prompt,
    count_tokens,
    teacher_messages,
)


@pytest.mark.parametrize("text,label", [
    ("Final Answer: de", "de"),
    ("final answer:EN", "en"),
    ("The text mixes scripts.\nFinal Answer: ot\n", "ot"),
    ("<think>Maybe es? Final Answer: es</think>\nFinal Answer: fr", "fr"),
    ("<think>unfinished thoughts Final Answer: es", None),
    ("  zh ", "zh"),
    ("**vi**", "vi"),
    ("Final Answer: it", None),
    ("It is probably German.", None),
    ("", None),
    ("Final Answer: de\nFinal Answer: ru", "ru"),
    ("The final answer is de.", "de"),  # LLM phrasings around the asked-for line
    ("Final answer - fr", "fr"),
    ("**Final Answer:** tr", "tr"),
    ("The final answer is Italian.", None),
])
def test_parse_answer(text, label):
    assert parse_answer(text) == label


def test_labels_and_check():
    assert len(LABELS) == 13 and LABELS[-1] == "ot"
    assert check_label("ur") == "ur"
    with pytest.raises(ValueError, match="unknown label 'xx'"):
        check_label("xx")


def test_prompt_is_built_from_named_rules():
    full = build_prompt()
    assert active_rules(full) == set(RULE_NAMES)
    for name in RULE_NAMES:
        assert name not in active_rules(build_prompt(without=[name]))
    edited = build_prompt(edits={"short": "Short texts are always ot."})
    assert "Short texts are always ot." in edited and "[rule: short]" in edited
    with pytest.raises(KeyError, match="unknown rule"):
        build_prompt(without=["nope"])
    assert teacher_messages("hola")[0] == {"role": "system", "content": full}


def test_prompt_is_long_and_counted_with_the_model_tokenizer():
    from helpers.local.model import load_tokenizer

    tok = load_tokenizer()
    n = count_tokens(tok)
    assert n > 1500  # the whole point: a long prompt paid for on every query
    assert count_tokens(tok, SHORT_PROMPT) < n / 20


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
    with pytest.raises(DataError, match=":2: needs a user turn"):
        read_conversations(tmp_path / "bad.jsonl")


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
