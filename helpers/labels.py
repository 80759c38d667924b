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
_BARE = re.compile(r"^[\s\"'`*_(\[]*([^\W_](?:[\w-]*[^\W_])?)[\s\"'`*_)\].!]*$")


def parse_answer(text: str) -> str | None:
    """Return the label a model's answer names, or ``None`` when it names none.

    Accepts ``Final Answer: xx`` anywhere after any ``<think>...</think>`` block
    (the last such line wins), or a bare label as the whole answer. Case,
    whitespace, quotes, markdown emphasis and surrounding prose are tolerated; a
    code outside :data:`LABELS`, or an answer without one, gives ``None``; a code
    with a region (``zh-CN``) is read as its language when only that is a label. A
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
        return labels.get(code) or (labels.get(code.split("-")[0]) if "-" in code else None)

    visible = _THINK.sub(" ", text)
    finals = [m.group(2) for m in _FINAL.finditer(visible)
              if label_of(m.group(2)) or (m.group(1) and m.group(3) is not None)]
    if finals:
        return label_of(finals[-1])
    bare = _BARE.match(visible)
    return label_of(bare.group(1)) if bare else None


def check_label(label: object, where: str = "") -> str:
    """Return ``label`` if it is one of :data:`LABELS`, else raise ``ValueError``."""
    if isinstance(label, str) and label in LABELS:
        return label
    prefix = f"{where}: " if where else ""
    raise ValueError(f"{prefix}unknown label {label!r}; expected one of {' '.join(LABELS)}")
