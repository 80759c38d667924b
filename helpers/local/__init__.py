"""The offline backend: Tinker's client interface, in process, on PyTorch (see ``clients``)."""

from .clients import (
    TEACHER_MODEL,
    LocalBackendError,
    LocalFuture,
    LocalSamplingClient,
    LocalServiceClient,
    LocalTrainingClient,
)
from .model import TINY_MODELS, TinyConfig, load_tokenizer

__all__ = [
    "TEACHER_MODEL", "TINY_MODELS", "LocalBackendError", "LocalFuture", "LocalSamplingClient",
    "LocalServiceClient", "LocalTrainingClient", "TinyConfig", "load_tokenizer",
]
