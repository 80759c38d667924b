"""The task's label set and the one answer parser every model's output goes through.

Language identification into 13 labels: twelve languages and ``ot`` for anything
else (other languages, no language at all, or no clear answer). A teacher is
asked to end its answer with ``Final Answer: xx``; a distilled student answers
with the bare label. :func:`parse_answer` reads both, and never guesses.

Example
-------
>>> parse_answer("<think>Greek letters...</think> Final Answer: EL")
'el'
>>> parse_answer("de") , parse_answer("I am not sure") is None
('de', True)
"""

from __future__ import annotations

import re

LABELS: tuple[str, ...] = (
    "ar", "de", "el", "en", "es", "fr", "hi", "ru", "tr", "ur", "vi", "zh", "ot",
)  # fmt: skip
"""The 13 labels, in the order every table and confusion matrix uses."""

LABEL_NAMES: dict[str, str] = {
    "ar": "Arabic",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "hi": "Hindi",
    "ru": "Russian",
    "tr": "Turkish",
    "ur": "Urdu",
    "vi": "Vietnamese",
    "zh": "Chinese (Simplified)",
    "ot": "Other / unknown",
}

_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
# "Final Answer" (markdown emphasis around its words allowed), an optional separator or "is"
# (group 1), then the code as a whole word (group 2: letters, digits, hyphens: a copied label
# set need not be two letters), and whether only punctuation follows it on its line (group 3)
_FINAL = re.compile(r"final[\s*_]*answer[\s*_`]*(is\b\s*[:：]?|[:：=\-–—])?[\s*_`\"'(\[]*([^\W_](?:[\w-]*[^\W_])?)"
                    r"([ \t\"'`*_)\].!]*(?:\r?\n|$))?", re.IGNORECASE)
# what follows the code on its line: a second choice ("/", "|", "or", a comma and another
# code) or a question mark makes a hedged answer
_HEDGE = re.compile(r"[\"'`*_)\]\t ]*(?:[/|?]|,[\t ]*([\w-]+))")
_OR = re.compile(r"[^\n]*\bor\b", re.IGNORECASE)
_REGION = re.compile(r"[a-z]{2}|\d{3}")
_BARE = re.compile(r"^[\s\"'`*_(\[]*([^\W_](?:[\w-]*[^\W_])?)[\s\"'`*_)\].!]*$")


def parse_answer(text: str) -> str | None:
    """Return the label a model's answer names, or ``None`` when it names none.

    Accepts ``Final Answer: xx`` anywhere after any ``<think>...</think>`` block
    (the last such line wins), or a bare label as the whole answer. Case,
    whitespace, quotes, markdown emphasis and surrounding prose are tolerated; a
    code outside :data:`LABELS`, or an answer without one, gives ``None``; a code
    with a region (``zh-CN``) is read as its language when only that is a label, one with
    a script (``hi-Latn``, romanised Hindi) is not. A hedged answer (``de or fr``,
    ``en/fr``, ``es?``) names no one label: ``None``. Only the text after a ``</think>``
    counts, even when the template opened the block in the prompt. A
    later "final answer" in prose ("I hope this final answer helps!") does not
    overrule the line: only one that names a label, or that has a separator and
    ends its line ("Final Answer: it"), counts.

    >>> parse_answer("The text is Turkish.\\nFinal Answer: tr")
    'tr'
    >>> parse_answer("**Final Answer**: de")
    'de'
    >>> parse_answer("  OT\\n")
    'ot'
    >>> parse_answer("Final Answer: it") is None
    True
    """
    if not isinstance(text, str):
        return None
    labels = {label.lower(): label for label in LABELS}

    def label_of(code: str) -> str | None:
        code = code.lower()
        language, _, region = code.partition("-")
        # a region (zh-CN, pt-BR, es-419) leaves the language; a script (hi-Latn: romanised) does not
        return labels.get(code) or (labels.get(language) if _REGION.fullmatch(region) else None)

    visible = _THINK.sub(" ", text)
    closed = visible.lower().rfind("</think>")  # a template that opened the block in the prompt
    if closed >= 0:
        visible = visible[closed + len("</think>"):]

    def hedged(at: int) -> bool:  # "de or fr", "en/fr", "es, fr", "es?": no one answer
        m = _HEDGE.match(visible, at)
        return bool(m and (m.group(1) is None or label_of(m.group(1)))) or bool(_OR.match(visible, at))

    finals = [(m.group(2), m.end(2)) for m in _FINAL.finditer(visible)
              if label_of(m.group(2)) or (m.group(1) and m.group(3) is not None)]
    if finals:
        code, end = finals[-1]
        return None if hedged(end) else label_of(code)
    bare = _BARE.match(visible)
    return label_of(bare.group(1)) if bare else None


def check_label(label: object, where: str = "") -> str:
    """Return ``label`` if it is one of :data:`LABELS`, else raise ``ValueError``."""
    if isinstance(label, str) and label in LABELS:
        return label
    prefix = f"{where}: " if where else ""
    raise ValueError(f"{prefix}unknown label {label!r}; expected one of {' '.join(LABELS)}")
