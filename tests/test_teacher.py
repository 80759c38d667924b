"""The stand-in teacher: the prompt's policy, executed, and served through the sampling interface."""

import time

import pytest
from tinker import types

from helpers import connect
from helpers.labels import parse_answer
from helpers.local import TEACHER_MODEL
from helpers.prompt import build_prompt, teacher_messages
from helpers.render import model_input
from helpers.teacher import ALL_RULES, READ_CHARS, decide, strip_noise


@pytest.mark.parametrize("text,label,rule", [
    ("Wir treffen uns um 14:30 am Bahnhof https://example.org/x 🚆", "de", None),
    ("SELECT id, name FROM users WHERE active = 1;", "ot", "code"),
    ("# Diese Funktion berechnet den Gesamtpreis\ndef total(items):\n    return sum(items)", "de", None),
    ("kya haal hai bhai, sab theek?", "ot", "romanized"),
    ("privet, kak dela segodnya?", "ot", "romanized"),
    ("Questo è un bel giorno per andare al mare.", "ot", None),
    ("Привіт, як справи? Що нового у тебе?", "ot", None),
    ("Danke", "ot", "short"),
    ("12.03.2024 19,99 € #sale", "ot", "noise"),
    ("میں آج بازار جا رہا ہوں اور شام کو واپس آؤں گا", "ur", None),
    ("Je suis très fatigué aujourd'hui. I really need a long holiday now.", "ot", "mixed"),
    ("I'm good, thanks", "en", None),  # three ordinary words: the detector's label
    ("ok cool", "ot", "short"),  # two words the detector barely knows: too short to be sure
])
def test_policy_decisions(text, label, rule):
    d = decide(text)
    assert d.label == label, d
    if rule:
        assert d.rule == rule
    assert max(d.confidences, key=d.confidences.get) == d.label
    assert sum(d.confidences.values()) == pytest.approx(1.0)


def test_switching_a_rule_off_changes_behaviour():
    code = "def f(x):\n    return x * 2"
    assert decide(code).label == "ot"
    assert decide("Questo è un bel giorno per andare al mare.", ALL_RULES - {"latin"}).label != "ot"
    assert decide("kya haal hai bhai, sab theek?", ALL_RULES - {"romanized"}).rule != "romanized"
    assert decide("Danke", ALL_RULES - {"short"}).label == "de"
    assert strip_noise("see https://x.org @bob #tag 42 🙂") == "see"


@pytest.mark.parametrize("piece", ["a-b-", "a.b."], ids=["hyphenated", "dotted"])
def test_a_long_token_is_read_in_linear_time(piece):
    """A query holding one 40 KB token without spaces is labelled in a fraction of a second: the URL,
    e-mail and call patterns tried every position inside it, each scanning to its end (two minutes).
    It takes about 0.2 s: 5 s leaves room for a slow, shared machine."""
    decide("Bitte lies das: " + piece)  # the detector's models are loaded once, untimed
    started = time.monotonic()
    assert decide("Bitte lies das: " + piece * 10_000).label == "de"
    elapsed = time.monotonic() - started
    assert elapsed < 5.0, f"{elapsed:.1f} s"


def test_a_long_query_is_decided_on_its_first_few_thousand_characters():
    """The detector's time grows faster than the length of one long word (nearly 90 s for 400 KB): the
    stand-in reads a query's first READ_CHARS characters, and decides as it does on those alone."""
    text = "Bitte lies das: " + "abcd" * 100_000
    decide(text[:READ_CHARS])  # the detector's models are loaded once, untimed
    started = time.monotonic()
    whole = decide(text)
    elapsed = time.monotonic() - started
    assert elapsed < 5.0, f"{elapsed:.1f} s"
    first = decide(text[:READ_CHARS])
    assert (whole.label, whole.rule, whole.reason, whole.considered) == (first.label, first.rule, first.reason, first.considered)
    assert whole.confidences == pytest.approx(first.confidences)  # lingua's last digits vary from call to call


def test_served_as_a_sampling_model_reading_the_prompt():
    service = connect("local")
    teacher = service.create_sampling_client(base_model=TEACHER_MODEL).result()
    tok = teacher.get_tokenizer()
    greedy = types.SamplingParams(max_tokens=64, temperature=0.0)

    def ask(text, prompt):
        seq = teacher.sample(model_input(tok, teacher_messages(text, prompt)), 1, greedy).result().sequences[0]
        return tok.decode(seq.tokens, skip_special_tokens=True)

    assert parse_answer(ask("def f(x):\n    return x * 2", build_prompt())) == "ot"
    # the teacher applies the rules the prompt contains: without the code rule, code is read as text
    assert "Rule code" not in ask("def f(x):\n    return x * 2", build_prompt(without=["code"]))
    # without the format rule there is no parseable answer, as with an LLM never told the format
    assert parse_answer(ask("Guten Morgen, wie geht es dir heute?", build_prompt(without=["format"]))) is None
    # sampling at temperature > 0 draws from the confidences; votes are reproducible by seed
    hot = types.SamplingParams(max_tokens=64, temperature=2.0, seed=3)
    prompt = model_input(tok, teacher_messages("ok merci", build_prompt()))
    a = teacher.sample(prompt, 8, hot).result()
    b = teacher.sample(prompt, 8, hot).result()
    assert [s.tokens for s in a.sequences] == [s.tokens for s in b.sequences]
    # ... and they do draw: "ok merci" is unsure (short, French or nothing), so 8 hot votes differ
    assert len({parse_answer(tok.decode(s.tokens, skip_special_tokens=True)) for s in a.sequences}) > 1
    greedy = teacher.sample(prompt, 8, types.SamplingParams(max_tokens=64, temperature=0.0)).result()
    assert len({tuple(s.tokens) for s in greedy.sequences}) == 1


def test_the_stand_in_reads_the_prompt_as_the_tokenizer_decodes_it(monkeypatch):
    """The engine decodes the prompt with the raw tokenizer (faster); it must read the same text."""
    import helpers.teacher as teacher_module
    from helpers.local.model import load_tokenizer

    tok = load_tokenizer()
    read = []
    original = teacher_module.read_conversation
    monkeypatch.setattr(teacher_module, "read_conversation", lambda rendered: read.append(rendered) or original(rendered))
    class Tokenizer:  # the tokenizer the engine gets: its Python-side decode is not to be used
        backend_tokenizer = tok.backend_tokenizer
        clean_up_tokenization_spaces = tok.clean_up_tokenization_spaces

        def __getattr__(self, name):
            return getattr(tok, name)

        def decode(self, *args, **kwargs):
            raise AssertionError("the slow decode was used")

    class Raw:  # counts the tokens decoded: a run's long prompt is decoded once, not per request
        decoded = 0

        def decode(self, ids, **kwargs):
            Raw.decoded += len(ids)
            return tok.backend_tokenizer.decode(ids, **kwargs)

        def __getattr__(self, name):
            return getattr(tok.backend_tokenizer, name)

    Tokenizer.backend_tokenizer = Raw()
    engine = teacher_module.PolicyTeacherEngine(Tokenizer())
    short = build_prompt(without=["format", "latin"])
    texts = ["Wir treffen uns um 14:30 am Bahnhof https://example.org/x 🚆", "我们明天见 ok?",
             "print('héllo')  # ça marche\n\tx = 1", "Xin chào, bạn khỏe không?", "ۓ ے ؟ \u200f \u200d ☕"]
    conversations = [teacher_messages(text, build_prompt()) for text in texts]
    # then another prompt (its first turn starts as the last one's did), no system turn, and the first prompt again
    conversations += [teacher_messages("Eu gosto de café", short), [{"role": "user", "content": "ok"}],
                      teacher_messages("Bonjour à tous", build_prompt())]
    prompt_tokens = len(model_input(tok, teacher_messages("", build_prompt())).to_ints())
    for i, messages in enumerate(conversations):
        if i == len(texts):  # five requests with one prompt: decoded whole once (and its first turn once)
            assert Raw.decoded < 2.5 * prompt_tokens
        ids = model_input(tok, messages).to_ints()
        user, rules = engine.read(ids)
        assert read[-1] == tok.decode(ids)
        assert user == messages[-1]["content"]
        system = messages[0]["content"] if len(messages) > 1 else ""
        assert rules == teacher_module.active_rules(system) | ({"format"} if "Final Answer:" in system else set())
