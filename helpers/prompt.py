"""The teacher prompt: what the course distils, built from named, switchable rules.

The prompt is long on purpose. It spells out a policy for every hard case of
13-label language identification (code, numbers, URLs, scripts, mixed and
romanised text, very short inputs) and the answer format. A teacher reads it
with every query; the distilled student never sees it.

Each :class:`Rule` renders to one section of the prompt, tagged ``[rule: name]``
so that a reader, or the offline stand-in teacher, can see which rules are in
force. :func:`build_prompt` takes the rules to use, so a notebook can show,
switch off or edit one and measure the effect.

Example
-------
>>> prompt = build_prompt()
>>> "[rule: code]" in prompt and "Final Answer:" in prompt
True
>>> "[rule: code]" in build_prompt(without=["code"])
False
>>> teacher_messages("Bonjour à tous")[-1]
{'role': 'user', 'content': 'Bonjour à tous'}
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from .labels import LABEL_NAMES, LABELS


@dataclass(frozen=True)
class Rule:
    """One section of the teacher prompt: a name, a title and the policy text."""

    name: str
    title: str
    text: str

    def render(self) -> str:
        return f"## {self.title} [rule: {self.name}]\n{self.text.strip()}\n"


INTRO = """\
You are a careful language identification system. You will be given a piece of text
written by a user: a chat message, a sentence, a snippet of code, a product name, or
anything else people type. Your job is to decide which language the text is written
in and to answer with exactly one label from a fixed set.

The label set has twelve languages and one catch-all label:
{label_lines}

Read the whole text before deciding. Apply the rules below in the order given; a
later rule never overrides an earlier one that already decided the answer. When the
rules leave you unsure, prefer `ot` over a guess: a wrong language label is worse
than an honest "other/unknown".
"""

RULES: tuple[Rule, ...] = (
    Rule(
        "noise",
        "Material that carries no language",
        """\
Before judging the language, mentally delete everything that is not natural language:
- web addresses (anything like https://..., www.example.org, example.com/path),
- e-mail addresses, @handles and #hashtags (the hashtag word does not count even if it
  is a real word),
- emoji, emoticons such as :-) and decorative symbols,
- numbers of every kind: digits, dates, times, prices, phone numbers, version numbers,
  percentages and units attached to numbers (5 km, 20%, $9.99, 12:30).
Judge only the words that remain. If nothing remains, the answer is `ot`.
A sentence that merely contains a link, a date or an emoji keeps the language of its words:
"Meet me at 10:30 at the station 🚉" is English.""",
    ),
    Rule(
        "code",
        "Source code, markup and data formats",
        """\
If the text is program code, a shell command, SQL, HTML/XML, CSS, JSON, YAML or a
similar machine-oriented format, ignore its syntax entirely: keywords, operators,
function and variable names, tag and key names. English-looking identifiers such as
get_user_name, isValid or SELECT do not make the text English.
Look only at comments and at string literals that contain real phrases of at least
three words. If they exist, the answer is the language of those comments and strings
(the language with most of their words). If the code has no such comments or strings,
the answer is `ot`, because code is not a natural language.""",
    ),
    Rule(
        "scripts",
        "Writing systems that settle the question",
        """\
Several labels are decided mostly by their writing system, but check the language,
not only the script:
- Greek alphabet -> `el`.
- Devanagari -> `hi` when the text is Hindi. Marathi, Nepali and other languages
  written in Devanagari are `ot`.
- Chinese characters -> `zh` for Chinese written with simplified characters. Japanese
  (Chinese characters mixed with hiragana or katakana) is `ot`.
- Cyrillic -> `ru` only for Russian. Ukrainian (letters і, ї, є, ґ), Bulgarian, Serbian,
  Macedonian, Belarusian, Kazakh and other Cyrillic languages are `ot`.
- Arabic script -> `ar` for Arabic, `ur` for Urdu. Urdu uses letters Arabic does not:
  ٹ ڈ ڑ ں ے and frequent ہ and ھ, and common Urdu words such as ہے، ہیں، کے، کی، میں، اور،
  نہیں، یہ، وہ. Persian (است، می، را، این) and other languages in Arabic script are `ot`.
- Any other script (Hangul, Thai, Hebrew, Armenian, Georgian, Bengali, Tamil, ...) -> `ot`.""",
    ),
    Rule(
        "latin",
        "Languages written in the Latin alphabet",
        """\
For text in Latin letters, decide between `de`, `en`, `es`, `fr`, `tr` and `vi` by the
letters, the diacritics and above all the small function words:
- German: ä ö ü ß, capitalised nouns, der die das und ist nicht mit auf.
- English: the, and, is, are, of, to, with, you, it; almost no diacritics.
- Spanish: ñ, ¿ ¡, á é í ó ú, el la los las de que y es por para.
- French: é è ê à ç œ, le la les des et est pas une dans avec.
- Turkish: ç ğ ı İ ö ş ü, suffixes such as -lar/-ler, bir, ve, bu, için, değil.
- Vietnamese: stacked tone marks and letters ă â đ ê ô ơ ư; many short syllables.
Every other Latin-script language is `ot`: Italian, Portuguese, Catalan, Dutch,
Swedish, Polish, Czech, Romanian, Indonesian, Malay, Swahili, Tagalog, Finnish,
Hungarian, and so on. Do not force such text into the nearest label: Italian is not
Spanish, Portuguese is not Spanish, Dutch is not German.""",
    ),
    Rule(
        "mixed",
        "Text in more than one language",
        """\
When the text mixes languages, count the natural-language words of each. If one
language clearly dominates (more than two thirds of the words), answer with that
language: a Spanish message with the single English word "meeting" is `es`. If no
language dominates, for example one clause in English and an equally long clause
in French, answer `ot`. Loanwords, brand names and quoted titles count towards the
language of the sentence around them.""",
    ),
    Rule(
        "romanized",
        "Romanised text",
        """\
Languages that are normally written in their own script are sometimes typed in Latin
letters: Hindi or Urdu as "kya haal hai", Arabic as "7abibi keefak", Russian as "privet,
kak dela", Chinese as pinyin "ni hao ma", Greek as "ti kaneis". Such romanised text is
`ot`, even when you recognise the language, because its label is reserved for the
language in its own writing system.""",
    ),
    Rule(
        "short",
        "Very short input",
        """\
A single word, a name, a brand or product name, an acronym or an interjection is `ot`:
"Paris", "iPhone 15", "Danke", "ok", "haha". Names of people and places stay `ot` even
when they have two or three words ("New York", "Angela Merkel"). Two or three ordinary
words get a language label only when the language is unmistakable, such as "Guten
Morgen" or "muchas gracias"; when in doubt, answer `ot`.""",
    ),
    Rule(
        "format",
        "Answer format",
        """\
You may think briefly first. Then end your answer with one line of exactly this form
and nothing after it:
Final Answer: xx
where xx is one of the thirteen labels in lower case. Never invent another code: a
language outside the list is `ot`.""",
    ),
)
"""The rules in prompt order. Names are stable; titles and texts may be edited."""

RULE_NAMES: tuple[str, ...] = tuple(r.name for r in RULES)

SHORT_PROMPT = (
    "Identify the language of the text. Answer with one code from: "
    + " ".join(LABELS)
    + " (ot = other). End with 'Final Answer: xx'."
)
"""A one-line prompt for the prompt-ablation experiment."""


def get_rule(name: str) -> Rule:
    """The rule called ``name``; raises ``KeyError`` listing the known names."""
    for r in RULES:
        if r.name == name:
            return r
    raise KeyError(f"unknown rule {name!r}; rules are: {', '.join(RULE_NAMES)}")


def build_prompt(
    rules: Iterable[Rule] | None = None,
    without: Iterable[str] = (),
    edits: dict[str, str] | None = None,
) -> str:
    """Render the teacher prompt from ``rules`` (default :data:`RULES`).

    Parameters
    ----------
    rules : the rules to include, in order.
    without : names of rules to leave out (a list: one name alone is ``["code"]``).
    edits : ``{name: new_text}`` to replace the text of some of ``rules``.

    A name that is not a rule, in either, raises ``KeyError``: a misspelt edit would otherwise
    leave the prompt as it was, and an experiment would measure a change never made.
    """
    chosen = list(RULES if rules is None else rules)
    if isinstance(without, str):
        raise TypeError(f"without must be a list of rule names, e.g. [{without!r}], not a string")
    skip = set(without)
    edits = edits or {}
    unknown = (skip - set(RULE_NAMES) - {r.name for r in chosen}) | (set(edits) - {r.name for r in chosen})
    if unknown:
        raise KeyError(f"unknown rule(s) {sorted(unknown)}; rules are: {', '.join(r.name for r in chosen)}")
    label_lines = "\n".join(f"- `{code}`: {LABEL_NAMES[code]}" for code in LABELS)
    parts = [INTRO.format(label_lines=label_lines)]
    for r in chosen:
        if r.name in skip:
            continue
        parts.append((replace(r, text=edits[r.name]) if r.name in edits else r).render())
    return "\n".join(parts)


DEFAULT_PROMPT = build_prompt()

_RULE_TAG = re.compile(r"\[rule: ([a-z_]+)\]")


def active_rules(prompt: str) -> set[str]:
    """Names of the rules a rendered prompt contains (by their ``[rule: name]`` tags)."""
    return set(_RULE_TAG.findall(prompt))


def teacher_messages(query: str, prompt: str = DEFAULT_PROMPT) -> list[dict[str, str]]:
    """The conversation a teacher sees: the long prompt as system message, the query as user."""
    return [{"role": "system", "content": prompt}, {"role": "user", "content": query}]


def student_messages(query: str) -> list[dict[str, str]]:
    """The conversation a student sees: the query alone, no prompt."""
    return [{"role": "user", "content": query}]


def count_tokens(tokenizer, prompt: str = DEFAULT_PROMPT) -> int:
    """Length of ``prompt`` (any text) in tokens of ``tokenizer`` (the model in use's own).

    Not :func:`helpers.render.prompt_tokens`, which gives the token ids of a conversation.
    """
    return len(tokenizer.encode(prompt, add_special_tokens=False))
