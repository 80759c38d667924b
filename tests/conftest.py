"""What several test files share: loading a script from ``scripts/`` as a module, queries
whose student prompt has an exact length, and sampling clients that record their prompts."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


# Settings of the shell must not reach the tests, and are removed before any fixture of any
# scope runs. A real key would make a plain `pytest` train and sample on Tinker, and pay: tests
# of the Tinker path set their own fake key and server (tests/fake_tinker.py). A learner's
# PD_QUICK, PD_BUILD or PD_WORKDIR (the notebooks mention them) would change what a test sees.
SETTINGS = ("TINKER_API_KEY", "TINKER_BASE_URL", "TINKER_CREDENTIAL_CMD", "PD_QUICK", "PD_BUILD", "PD_WORKDIR")
for _name in SETTINGS:
    os.environ.pop(_name, None)
os.environ["PD_BACKEND"] = "local"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After each test file (its last test's teardown, module fixtures and ``monkeypatch`` undone
    too), none of the settings is set and the backend is still local: a test that set one by
    hand would change what the files after it see. Reported as an error of that file's last
    test, naming the file. (Within a file a module fixture may hold a setting for its tests.)"""
    result = yield
    # doctest items have no .module; their DoctestModule is a Module, as a test file's is
    if nextitem is not None and nextitem.getparent(pytest.Module) is item.getparent(pytest.Module):
        return result
    left = [name for name in SETTINGS if name in os.environ]  # names only, never a key's value
    for name in left:
        os.environ.pop(name)  # one error, not one for every file after it
    backend, os.environ["PD_BACKEND"] = os.environ.get("PD_BACKEND"), "local"
    where = item.nodeid.split("::")[0]
    assert not left, f"a test of {where} left {', '.join(left)} set for the files after it"
    assert backend == "local", f"a test of {where} changed PD_BACKEND for the files after it"
    return result


@pytest.fixture(autouse=True)
def a_fresh_course_folder(monkeypatch, tmp_path_factory):
    """Each test's notebooks' folder (``PD_WORKDIR``) is a fresh one, never ``runs/course``."""
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


@pytest.fixture
def recorded_prompts():
    """``asked, recording = recorded_prompts``: ``recording(sampler)`` is a done future of a
    stand-in for ``sampler`` whose ``sample`` first adds the prompt's tokens to ``asked`` (a
    future, as ``create_sampling_client`` and ``save_weights_and_get_sampling_client`` give)."""
    from concurrent.futures import Future

    asked: list[list[int]] = []

    def recording(sampler) -> Future:
        class Sampler:
            def __getattr__(self, name):
                return getattr(sampler, name)

            def sample(self, prompt, *rest, **options):
                asked.append(prompt.to_ints())
                return sampler.sample(prompt, *rest, **options)

        done = Future()
        done.set_result(Sampler())
        return done

    return asked, recording


@pytest.fixture(scope="session")
def ctrl_c_from_another_thread():
    """:func:`_ctrl_c_from_another_thread`, for the tests that stop a stalled run."""
    return _ctrl_c_from_another_thread


@contextlib.contextmanager
def _ctrl_c_from_another_thread(ready, wake):
    """Ctrl-C as a stalled run meets it at its worst: once ``ready()`` holds (and 0.3 s more, for
    the main thread to be waiting), another thread sends SIGINT while the main thread blocks
    it, so that thread takes the signal. If the ``with`` block has not ended 20 s later,
    ``wake()`` answers what the main thread waits for, so that the test fails instead of
    hanging; the ``threading.Event`` yielded is then set."""
    import signal
    import threading
    import time

    rescued, ended = threading.Event(), threading.Event()

    def press_stop():
        while not ready():
            time.sleep(0.01)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)
        if not ended.wait(20):  # still waiting: answer it
            rescued.set()
            wake()

    threading.Thread(target=press_stop, daemon=True).start()  # before the mask: a new thread inherits it
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield rescued
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        ended.set()
