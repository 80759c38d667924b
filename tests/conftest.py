"""What several test files share: loading a script from ``scripts/`` as a module, and queries
whose student prompt has an exact length."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(autouse=True)
def course_settings_of_the_shell_do_not_reach_the_tests(monkeypatch, tmp_path_factory):
    """A learner's ``PD_QUICK``, ``PD_BUILD`` or ``PD_WORKDIR`` (the notebooks mention them) must
    not change what a test sees, nor let a test write into that folder; tests that need one set
    it themselves. The course's folder is a fresh one per test."""
    monkeypatch.delenv("PD_QUICK", raising=False)
    monkeypatch.delenv("PD_BUILD", raising=False)
    monkeypatch.setenv("PD_WORKDIR", str(tmp_path_factory.mktemp("workdir")))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_script():
    """``load_script("run_course")`` is ``scripts/run_course.py`` imported as a module."""
    return _load


@pytest.fixture(scope="session")
def query_of_prompt_length():
    """``query_of_prompt_length(n)``: a query whose generation prompt without the teacher's
    prompt (the student's) is exactly ``n`` tokens with the local tokenizer (n in 420..520)."""
    from helpers.local.model import load_tokenizer
    from helpers.prompt import student_messages
    from helpers.render import prompt_tokens

    tokenizer = load_tokenizer()
    by_length = {len(prompt_tokens(tokenizer, student_messages(text))): text
                 for text in (" ".join(["ab"] * n) + " a" for n in range(400, 520))}
    return by_length.__getitem__
