"""Helpers for the prompt distillation course: one module per concern.

- ``labels``: the 13 labels and the one answer parser
- ``prompt``: the teacher prompt, built from named rules
- ``teacher``: the offline stand-in teacher (rules on top of a language detector)
- ``backend`` / ``local``: ``connect()`` to Tinker or to the in-process local backend
- ``render``: chat rendering into ``tinker.types.Datum``
- ``generate``: distillation data from a teacher (async, resumable)
- ``train``: the student's training loop
- ``evaluate``: predictors, metrics, confusion matrices, cost
"""

from .backend import connect
from .labels import LABELS, parse_answer

__all__ = ["LABELS", "connect", "parse_answer"]
__version__ = "0.1.0"
