"""The set-up files agree with each other, and CI runs what the README says.

- ``pyproject.toml`` (pip) and ``environment.yml`` (conda) list the same packages with the
  same version constraints, so neither kind of user gets a different course.
- ``make test`` runs the unit tests *and* the notebooks; ``.ci/run`` runs ``make test``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]

# Conda package names that differ from the pip name of the same thing.
CONDA_TO_PIP = {"pytorch": "torch", "py-opencv": "opencv-python"}
# Entries of environment.yml that are not course packages.
CONDA_ONLY = {"python", "pip"}

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*$")


def normalise(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-``, ``_`` and ``.`` become one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(text: str, conda: bool = False) -> tuple[str, SpecifierSet]:
    """(normalised name, specifier) from ``"name>=1.0"``, ``"name[extra]==2"`` or conda's ``"name=1.0"``.

    >>> parse_requirement("Scikit_Learn >=1.5")
    ('scikit-learn', <SpecifierSet('>=1.5')>)
    >>> parse_requirement("pytorch=2.13.0", conda=True)
    ('torch', <SpecifierSet('==2.13.0')>)
    """
    text = text.split(";")[0].split("#")[0].strip()
    match = _REQUIREMENT.match(text)
    if not match:
        raise ValueError(f"cannot read the requirement {text!r}")
    name, _extras, spec = match.groups()
    spec = spec.replace(" ", "")
    if conda:
        name = CONDA_TO_PIP.get(name.lower(), name)
        # conda's "=1.0" means "1.0.*" and "==1.0" means exactly; pip's "==" covers both here
        spec = re.sub(r"(?<![<>=!~])=(?!=)", "==", spec)
    return normalise(name), SpecifierSet(spec)


def pyproject_requirements(path: Path = ROOT / "pyproject.toml") -> dict[str, SpecifierSet]:
    """Every dependency of the project, its extras included, by normalised name."""
    project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
    lines = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        lines += extra
    found: dict[str, SpecifierSet] = {}
    for line in lines:
        name, spec = parse_requirement(line)
        if name == normalise(project["name"]):  # an extra that pulls in another extra
            continue
        assert name not in found, f"pyproject.toml lists {name} twice"
        found[name] = spec
    return found


def conda_requirements(path: Path = ROOT / "environment.yml") -> dict[str, SpecifierSet]:
    """Every package of environment.yml, conda and pip sections, by normalised pip name."""
    env = yaml.safe_load(path.read_text(encoding="utf-8"))
    found: dict[str, SpecifierSet] = {}

    def add(name: str, spec: SpecifierSet) -> None:
        assert name not in found, f"environment.yml lists {name} twice"
        found[name] = spec

    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            for line in entry.get("pip", []):
                if line.strip().startswith("-"):  # "-e .", "--index-url ...": options, not packages
                    continue
                add(*parse_requirement(line))
        else:
            name, spec = parse_requirement(str(entry), conda=True)
            if name not in CONDA_ONLY:
                add(name, spec)
    return found


def conda_python(path: Path = ROOT / "environment.yml") -> str:
    env = yaml.safe_load(path.read_text(encoding="utf-8"))
    for entry in env["dependencies"]:
        if isinstance(entry, str) and parse_requirement(entry, conda=True)[0] == "python":
            return entry.split("=", 1)[1].lstrip("=")
    raise AssertionError("environment.yml does not pin python")


def test_parse_requirement_normalises_names_and_conda_pins():
    assert parse_requirement("Lingua_Language.Detector>=2.0") == (
        "lingua-language-detector",
        SpecifierSet(">=2.0"),
    )
    assert parse_requirement("pytorch ==2.13.0", conda=True) == ("torch", SpecifierSet("==2.13.0"))
    assert parse_requirement("numpy>=1.26", conda=True) == ("numpy", SpecifierSet(">=1.26"))
    assert parse_requirement("nbmake") == ("nbmake", SpecifierSet(""))


def drift(pip: dict[str, SpecifierSet], conda: dict[str, SpecifierSet]) -> list[str]:
    """What differs between the two package lists, one readable line per difference."""
    problems = [
        f"{name}: in pyproject.toml, missing from environment.yml"
        for name in sorted(set(pip) - set(conda))
    ]
    problems += [
        f"{name}: in environment.yml, missing from pyproject.toml"
        for name in sorted(set(conda) - set(pip))
    ]
    problems += [
        f"{name}: pyproject.toml has {str(pip[name]) or 'no pin'}, environment.yml has {str(conda[name]) or 'no pin'}"
        for name in sorted(set(pip) & set(conda))
        if pip[name] != conda[name]
    ]
    return problems


def test_environment_yml_matches_pyproject():
    problems = drift(pyproject_requirements(), conda_requirements())
    assert not problems, "pyproject.toml and environment.yml have drifted apart:\n" + "\n".join(
        problems
    )


def test_drift_is_caught(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["torch==2.13.0", "tqdm>=4.66"]\n'
        '[project.optional-dependencies]\ndev = ["pytest>=8", "x[other]"]\n'
    )
    (tmp_path / "environment.yml").write_text(
        "dependencies:\n  - python=3.11\n  - pip\n  - pytorch=2.12.0\n  - scikit_learn>=1.5\n"
        "  - pip:\n      - pytest>=8\n      - -e .\n"
    )
    problems = drift(
        pyproject_requirements(tmp_path / "pyproject.toml"),
        conda_requirements(tmp_path / "environment.yml"),
    )
    assert problems == [
        "tqdm: in pyproject.toml, missing from environment.yml",
        "scikit-learn: in environment.yml, missing from pyproject.toml",
        "torch: pyproject.toml has ==2.13.0, environment.yml has ==2.12.0",
    ]


def test_torch_is_pinned_in_both():
    assert str(pyproject_requirements()["torch"]) == "==2.13.0"
    assert str(conda_requirements()["torch"]) == "==2.13.0"


def test_conda_python_satisfies_requires_python():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "requires-python"
    ]
    version = conda_python()
    assert SpecifierSet(requires).contains(version + ".0"), (
        f"environment.yml has python={version}, pyproject needs {requires}"
    )


def recipe(makefile: str, target: str) -> str:
    """The recipe lines of ``target`` in a Makefile's text."""
    lines = makefile.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"^{re.escape(target)}\s*:(?!=)", line) and "export" not in line:
            body = []
            for following in lines[i + 1 :]:
                if not following.startswith("\t"):
                    break
                body.append(following)
            return "\n".join(body)
    raise AssertionError(f"Makefile has no rule for {target!r}")


@pytest.fixture(scope="module")
def makefile() -> str:
    return (ROOT / "Makefile").read_text(encoding="utf-8")


def test_make_test_runs_unit_tests_and_notebooks(makefile):
    body = recipe(makefile, "test")
    assert re.search(r"-m pytest\b[^\n]*\btests\b", body), "make test must run pytest on tests/"
    assert re.search(r"-m pytest\b[^\n]*--nbmake[^\n]*\bnotebooks/?", body), (
        "make test must run the notebooks with nbmake"
    )
    assert "|| true" not in body and "set +e" not in body, "make test must not hide a failure"


@pytest.mark.parametrize("unit,notebooks,backend", [(1, 0, None), (0, 1, None), (0, 0, None), (0, 0, ""), (0, 0, " ")])
def test_make_test_fails_when_either_run_fails_and_runs_both(tmp_path, unit, notebooks, backend):
    """``make test`` with a stand-in for the course's Python that fails the unit tests, the
    notebooks or neither: it runs both (one failure does not hide the other's output), runs the
    doctests of helpers/ with the unit tests and the notebooks offline, and fails when either does.
    Offline too with PD_BACKEND set but empty (a CI variable left unset), which the course reads
    as unset: with a key in the environment it would otherwise pick Tinker."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    calls = tmp_path / "calls"
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'echo "PD_BACKEND=$PD_BACKEND $*" >> "{calls}"\n'
        f'case "$*" in *--nbmake*) exit {notebooks} ;; *) exit {unit} ;; esac\n'
    )
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("PD_BACKEND", "MAKEFLAGS", "MFLAGS")}
    if backend is not None:
        env["PD_BACKEND"] = backend
    result = subprocess.run(["make", "-s", "-o", ".venv/.installed", "test", f"PY={python}"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    lines = calls.read_text().splitlines()
    assert len(lines) == 2, lines
    assert re.search(r"-m pytest\b.*\btests helpers\b", lines[0]), lines[0]
    assert "--nbmake" in lines[1] and "notebooks" in lines[1], lines[1]
    assert all(line.startswith("PD_BACKEND=local ") for line in lines), lines
    assert (result.returncode != 0) == bool(unit or notebooks), result.stderr[-2000:]


def test_every_target_sets_up_first(makefile):
    for target in ("test", "run", "lab", "bench", "lint"):
        rule = next(
            line
            for line in makefile.splitlines()
            if re.match(rf"^{target}\s*:(?!=)", line) and "export" not in line
        )
        assert "setup" in rule.split(":", 1)[1], f"make {target} must depend on setup"


def test_ci_runs_make_test_and_fails_on_errors():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        line.strip()
        for line in script.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert "set -euo pipefail" in commands
    assert "make test" in commands, ".ci/run must call make test"
    assert not any("|| true" in c or "|| :" in c for c in commands), (
        ".ci/run must not mask a failure"
    )


# Modules of this repository that the tests and scripts import by name, not packages: the
# package, and any file of tests/ or scripts/ (fake_tinker, build_data, test_environment, ...).
LOCAL_MODULES = {"helpers"} | {p.stem for folder in ("tests", "scripts") for p in (ROOT / folder).glob("*.py")}
# helpers/bench.py is run by `make bench`, which installs the dev extra (psutil).
DEV_ONLY_FILES = {"helpers/bench.py"}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of the absolute imports in a Python file, at any depth (lazy ones too);
    for a notebook, in its code cells (IPython's ``%`` and ``!`` lines left out)."""
    import ast
    import json

    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    else:
        source = path.read_text(encoding="utf-8")
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_package_the_code_imports_is_declared():
    """A package used only because another one pulls it in (regex through transformers, joblib
    through scikit-learn) breaks the day that one stops: the helpers import only what
    pyproject.toml lists as a dependency (the notebooks too: a learner runs them), the tests,
    scripts and benchmark what it lists as a dependency or in the dev extra."""
    import sys
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = {parse_requirement(line)[0] for line in project["dependencies"]}
    dev = runtime | {parse_requirement(line)[0] for line in project["optional-dependencies"]["dev"]}
    distributions = packages_distributions()
    missing = []
    for path in sorted([*ROOT.glob("helpers/**/*.py"), *ROOT.glob("scripts/*.py"), *ROOT.glob("tests/*.py"),
                        *ROOT.glob("notebooks/*.ipynb")]):
        relative = path.relative_to(ROOT).as_posix()
        learners = relative.startswith(("helpers/", "notebooks/")) and relative not in DEV_ONLY_FILES
        allowed = runtime if learners else dev
        for name in sorted(imported_packages(path) - sys.stdlib_module_names - LOCAL_MODULES - {"__future__"}):
            declared = {normalise(d) for d in distributions.get(name, [])} & allowed
            if not declared:
                missing.append(f"{relative}: imports {name} ({', '.join(distributions.get(name, ['not installed']))})")
    assert not missing, "imported but not declared in pyproject.toml:\n" + "\n".join(missing)


def test_make_lab_starts_for_root_too_and_passes_lab_args():
    """Jupyter refuses root without --allow-root (the usual user in a container); the target adds
    it for root only, and LAB_ARGS reaches jupyter lab (here --version, so nothing is served)."""
    import subprocess

    result = subprocess.run(["make", "--no-print-directory", "lab", "LAB_ARGS=--version"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", result.stdout.strip().splitlines()[-1]), result.stdout


def constraints(path: Path = ROOT / "constraints.txt") -> dict[str, SpecifierSet]:
    found: dict[str, SpecifierSet] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.split("#")[0].strip():
            name, spec = parse_requirement(line)
            assert name not in found, f"constraints.txt lists {name} twice"
            found[name] = spec
    return found


def test_make_setup_installs_the_versions_the_figures_were_measured_with(makefile):
    """The README's offline figures depend on the packages bench records (bench.FIGURE_PACKAGES):
    constraints.txt pins each of them exactly, each pin meets pyproject.toml's bounds (or the
    install would fail), and make setup installs with it and again when it changes."""
    from helpers.bench import FIGURE_PACKAGES

    pins, bounds = constraints(), pyproject_requirements()
    for name in (*FIGURE_PACKAGES, "torch"):
        assert name in pins, f"constraints.txt does not pin {name}, which the figures depend on"
    for name, spec in pins.items():
        assert name in bounds, f"constraints.txt pins {name}, which pyproject.toml does not list"
        (version,) = [s.version for s in spec if s.operator == "=="]
        assert version in bounds[name], f"constraints.txt pins {name}=={version}, outside pyproject.toml's {bounds[name]}"
    assert re.search(r"pip install [^\n]*-c constraints\.txt", recipe(makefile, "$(STAMP)")), \
        "make setup must install with -c constraints.txt"
    assert re.search(r"^\$\(STAMP\):[^\n]*\bconstraints\.txt\b", makefile, re.M), "a changed pin must reinstall"


def test_the_pins_are_what_the_readme_says_the_figures_were_measured_with():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Benchmarks"):readme.index("## Reliability")]
    for name, spec in constraints().items():
        (version,) = [s.version for s in spec if s.operator == "=="]
        assert re.search(rf"{re.escape(name)}\s+{re.escape(version)}\b", section), \
            f"README's benchmark section does not say {name} {version}"
