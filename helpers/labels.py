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
_FINAL = re.compile(r"final\s*answer\s*(?:is\s*[:：]?|[:：=\-–—])?\s*[\"'`*(\[]*\s*([a-z]{2})\b", re.IGNORECASE)
_BARE = re.compile(r"^[\s\"'`*(\[]*([a-z]{2})[\s\"'`*)\].!]*$", re.IGNORECASE)


def parse_answer(text: str) -> str | None:
    """Return the label a model's answer names, or ``None`` when it names none.

    Accepts ``Final Answer: xx`` anywhere after any ``<think>...</think>`` block
    (the last such line wins), or a bare label as the whole answer. Case,
    whitespace, quotes and surrounding prose are tolerated; a two-letter code
    outside :data:`LABELS`, or an answer without one, gives ``None``.

    >>> parse_answer("The text is Turkish.\\nFinal Answer: tr")
    'tr'
    >>> parse_answer("  OT\\n")
    'ot'
    >>> parse_answer("Final Answer: it") is None
    True
    """
    if not isinstance(text, str):
        return None
    visible = _THINK.sub(" ", text)
    finals = _FINAL.findall(visible)
    if finals:
        code = finals[-1].lower()
        return code if code in LABELS else None
    bare = _BARE.match(visible)
    if bare:
        code = bare.group(1).lower()
        return code if code in LABELS else None
    return None


def check_label(label: object, where: str = "") -> str:
    """Return ``label`` if it is one of :data:`LABELS`, else raise ``ValueError``."""
    if isinstance(label, str) and label in LABELS:
        return label
    prefix = f"{where}: " if where else ""
    raise ValueError(f"{prefix}unknown label {label!r}; expected one of {' '.join(LABELS)}")
