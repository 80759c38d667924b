"""Helpers for the prompt distillation course: one module per concern.

- ``labels``: the 13 labels and the one answer parser
- ``prompt``: the teacher prompt, built from named rules
- ``teacher``: the offline stand-in teacher (rules on top of a language detector)
- ``backend`` / ``local``: ``connect()`` to Tinker or to the in-process local backend
- ``render``: chat rendering into ``tinker.types.Datum``
- ``generate``: distillation data from a teacher (async, resumable)
- ``train``: the student's training loop
- ``baseline``: the classic baseline (character n-grams, logistic regression)
- ``evaluate``: predictors, metrics, cost; ``plots``: confusion matrices and curves
- ``pipeline``: the whole recipe in one call; ``cli``: ``python -m helpers ...``
- ``advanced``: notebook 05's experiments; ``bench``: ``make bench``
- ``dataio``: reading and atomic writing of data files; ``course``, ``widgets``: notebook support
"""

from .backend import connect
from .labels import LABELS, parse_answer

__all__ = ["LABELS", "connect", "parse_answer"]
__version__ = "0.1.0"
