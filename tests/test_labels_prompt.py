"""The answer parser and the teacher prompt's rules (data loading: test_dataio.py)."""


import pytest

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
    ("**Final Answer**: de", "de"),  # markdown emphasis around the words, as chat models write it
    ("_Final Answer_: tr", "tr"),
    ("Final Answer: `zh`", "zh"),
    ("Final Answer: en\n(This final answer is based on the English words.)", "en"),  # prose after the line
    ("Final Answer: de\nFinal Answer: it", None),  # a later line outside the labels is not passed over
    ("Final Answer: English", None),
    ("_de_", "de"),
    ("Final Answer: zh-CN", "zh"),  # a region after the language
    ("Final Answer: de\n\nI hope this final answer helps!", "de"),  # no separator: prose, not an answer
    ("No final answer here", None),
    ("Final Answer: de or fr", None),  # hedged: no one answer, never the first of two
    ("Final Answer: en/fr", None),
    ("Final Answer: de (or possibly nl)", None),
    ("Final Answer: es, fr", None),
    ("Final Answer: es?", None),
    ("Final Answer: OT | es", None),
    ("Final Answer: de (German)", "de"),  # a gloss is not a hedge
    ("Final Answer: de, the German words decide", "de"),
    ("Final Answer: fr.\nIt could be Belgian French or Swiss French.", "fr"),  # nor a later line
    ("Final Answer: hi-Latn", None),  # a script: romanised Hindi is not hi
    ("Final Answer: zh-Hant", None),
    ("Final Answer: es-419", "es"),  # a region
    ("Looks Spanish. Final Answer: es\n</think>\n\nThe text is Portuguese, not in the list.", None),
    ("Final Answer: es\n</think>\n\nFinal Answer: ot", "ot"),  # the block was opened in the prompt
])
def test_parse_answer(text, label):
    assert parse_answer(text) == label


def test_parse_answer_reads_a_copied_label_set_of_any_length(monkeypatch):
    """The README suggests copying labels.py with one's own labels: codes need not be two letters."""
    from helpers import labels

    monkeypatch.setattr(labels, "LABELS", ("pos", "neg", "pt-br", "ot"))
    assert [parse_answer(t) for t in ("Final Answer: pos", "neg", "**Final Answer:** PT-BR", "Final Answer: po",
                                      "Final Answer: de")] == ["pos", "neg", "pt-br", None, None]


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
    with pytest.raises(KeyError, match=r"unknown rule\(s\) \['cod'\]"):  # a misspelt edit is no silent no-op
        build_prompt(edits={"cod": "Code is ot."})
    with pytest.raises(TypeError, match=r"without must be a list of rule names, e.g. \['code'\]"):
        build_prompt(without="code")  # not the rules 'c', 'o', 'd', 'e'
    assert teacher_messages("hola")[0] == {"role": "system", "content": full}


def test_count_tokens_counts_the_prompt_alone_with_the_tokenizer_given():
    """Any tokenizer with ``encode(text, add_special_tokens=...)`` will do; the model's own (and
    the prompt's length in it) is in test_evaluate.py, since it needs ``local/model.py``."""

    class Words:
        def encode(self, text, add_special_tokens=True):
            return ["<bos>"] * add_special_tokens + text.split()

    assert count_tokens(Words(), "two words") == 2  # no special tokens: the prompt alone
    assert count_tokens(Words()) == len(build_prompt().split())  # the default is the full prompt
    assert count_tokens(Words(), SHORT_PROMPT) < count_tokens(Words()) / 20
