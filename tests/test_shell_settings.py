"""Settings in a learner's shell never reach the tests (tests/conftest.py removes them).

A real ``TINKER_API_KEY`` would make a plain ``pytest`` train on Tinker and pay; ``PD_WORKDIR``
made a doctest fail and tests write into the learner's folder; ``PD_QUICK=0`` would make the
course's helpers train on the whole pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import SETTINGS

ROOT = Path(__file__).resolve().parents[1]


def test_what_each_test_sees_of_the_course_settings():
    """Also fails when a test before it in the run left one of the settings behind (as one
    calling make run's main() in-process did with PD_BUILD)."""
    from helpers import connect
    from helpers.course import is_quick, workdir

    names = set(os.environ)  # names only: a failure must not print a real key's value
    assert not names & (set(SETTINGS) - {"PD_WORKDIR"})  # PD_WORKDIR: each test's fresh folder (conftest)
    assert os.environ.get("PD_BACKEND") == "local"
    service = connect()
    assert service.backend == "local"
    assert is_quick(service)  # offline, the course's default sample
    assert ROOT not in workdir().parents  # a fresh folder, not runs/course nor the learner's


def test_a_key_and_course_settings_in_the_shell_do_not_reach_the_tests(tmp_path):
    learner = tmp_path / "learners_folder"
    env = {**os.environ, "TINKER_API_KEY": "tml-a-real-looking-key", "TINKER_BASE_URL": "http://127.0.0.1:9",
           "PD_QUICK": "0", "PD_WORKDIR": str(learner), "PD_BUILD": str(tmp_path / "build")}
    env.pop("PD_BACKEND", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_shell_settings.py::test_what_each_test_sees_of_the_course_settings"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
    assert not learner.exists() and not (tmp_path / "build").exists()


def test_a_test_file_that_leaves_a_setting_set_is_named(tmp_path):
    """tests/conftest.py checks after each file (doctest modules too) that no setting is left
    set; a module fixture may hold one for its own tests. Run on three files of its own."""
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))
    (tmp_path / "test_a_leaky.py").write_text(
        "import os, pytest\n"
        "@pytest.fixture(scope='module')\n"
        "def held():\n"
        "    with pytest.MonkeyPatch.context() as mp:\n"
        "        mp.setenv('PD_BUILD', '/held/for/this/file')\n"
        "        yield\n"
        "def test_one(held):\n    assert os.environ['PD_BUILD']\n"
        "def test_two(held):\n    os.environ['PD_QUICK'] = '1'\n"
        "def test_three(held, monkeypatch):\n    monkeypatch.setenv('TINKER_API_KEY', 'tml-x')\n")
    (tmp_path / "test_b_clean.py").write_text("import os\ndef test_after():\n    assert 'PD_QUICK' not in os.environ\n")
    (tmp_path / "c_doc.py").write_text("def f():\n    '''\n    >>> 1 + 1\n    2\n    '''\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--doctest-modules", "."],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "a test of test_a_leaky.py left PD_QUICK set for the files after it" in result.stdout, result.stdout[-3000:]
    assert "PD_BUILD" not in result.stdout.split("short test summary")[-1]  # the module fixture's, undone in time
    assert result.stdout.strip().splitlines()[-1].startswith("5 passed, 1 error"), result.stdout[-2000:]
