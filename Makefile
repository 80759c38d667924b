# The course's commands. `make test` and `make run` are the two a newcomer types;
# every target except clean/help installs first, and installing is a no-op
# (a file-date check, no Python started) when pyproject.toml and constraints.txt have not changed.
#
#   make setup   create .venv (Python >= 3.11) and install the course with its dev tools
#   make test    unit tests, then every notebook headless through nbmake
#   make run     the whole course headless: pipeline, notebooks, summary (in build/)
#   make lab     JupyterLab on notebooks/ (LAB_ARGS="..." passes options to it)
#   make bench   the benchmark suite (bench/results.json)
#   make lint    ruff
#   make clean   remove build/ and caches (make distclean also removes .venv)
#
# PD_BACKEND=local|tinker chooses the backend for test, run, lab and bench; without it the
# course uses Tinker when TINKER_API_KEY is set and the offline backend otherwise, except
# `make test`, which stays offline unless PD_BACKEND says otherwise.
# PYTHON=/path/to/python3.11 picks the interpreter for a new .venv.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP_LOG := $(VENV)/pip-install.log
# Tried in this order for a new .venv, unless PYTHON is given; the first that runs and is
# >= 3.11 wins (3.11 first: the pinned torch CPU wheel on the project's machines is for it).
PYTHON_CANDIDATES := python3.11 python3.12 python3.13 python3.14 python3 python

# PD_BACKEND, TINKER_API_KEY and TINKER_BASE_URL pass through from the environment or the
# command line (make run PD_BACKEND=local); make passes them on to every recipe.
# Runs must not try to download models or fork tokenizer threads under the kernel.
test run bench: export HF_HUB_OFFLINE ?= 1
test run bench lab: export TOKENIZERS_PARALLELISM ?= false
# Tests are offline unless asked: a learner's key should not turn `make test` into paid calls.
# Set but empty (a CI variable left unset) counts as unset, as the course reads it.
test: export PD_BACKEND := $(or $(strip $(PD_BACKEND)),local)

# A .venv whose interpreter has gone (Python uninstalled, folder copied) is rebuilt.
ifneq ($(shell test -e $(PY) || echo missing),)
.PHONY: $(STAMP)
endif

.PHONY: help setup test run lab bench lint clean distclean

help:
	@sed -n 's/^#   make /make /p' Makefile

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@if ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
	  python=""
	  for candidate in $(or $(PYTHON),$(PYTHON_CANDIDATES)); do
	    if command -v "$$candidate" >/dev/null 2>&1 \
	      && "$$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
	      python="$$candidate"; break
	    fi
	  done
	  if [ -z "$$python" ]; then
	    echo "make setup: no Python >= 3.11 found (tried: $(or $(PYTHON),$(PYTHON_CANDIDATES))); install Python 3.11 or run 'make setup PYTHON=/path/to/python3.11'" >&2
	    exit 1
	  fi
	  echo "make setup: creating $(VENV) with $$("$$python" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
	  rm -rf $(VENV)
	  if ! "$$python" -m venv $(VENV) >/dev/null 2>$(VENV).err; then
	    echo "make setup: '$$python -m venv' failed ($$(tail -n 1 $(VENV).err)); on Debian/Ubuntu install the venv module: apt-get install python3-venv" >&2
	    rm -rf $(VENV) $(VENV).err
	    exit 1
	  fi
	  rm -f $(VENV).err
	fi
	echo "make setup: installing the course and its tools into $(VENV) (pip install -c constraints.txt -e '.[dev]'; log in $(PIP_LOG))"
	if ! $(PY) -m pip install --disable-pip-version-check -c constraints.txt -e '.[dev]' >$(PIP_LOG) 2>&1; then
	  if grep -Eqi 'NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|Name or service not known|Network is unreachable|Connection refused|ConnectTimeout|Read timed out|ProxyError|SSLError|Could not fetch URL|not a trusted or secure host' $(PIP_LOG); then
	    echo "make setup: pip cannot reach the package index (no network, a proxy, or a certificate problem); fix the connection or pip's index settings (pip config list) and run make setup again; full log: $(PIP_LOG)" >&2
	  elif grep -Eq 'from versions: none' $(PIP_LOG); then
	    echo "make setup: pip found no release at all of $$(grep -Eo -m1 'satisfies the requirement [^ ]+' $(PIP_LOG) | cut -d' ' -f4): the package index is unreachable or pip's index settings are wrong (pip config list); full log: $(PIP_LOG)" >&2
	  elif grep -Eqi 'No matching distribution found' $(PIP_LOG); then
	    echo "make setup: the package index has no matching release: $$(grep -Ei -m1 'No matching distribution found' $(PIP_LOG) | sed 's/^ *ERROR: //'); full log: $(PIP_LOG)" >&2
	  else
	    tail -n 15 $(PIP_LOG) >&2
	    echo "make setup: pip install failed; see the lines above and the full log in $(PIP_LOG)" >&2
	  fi
	  exit 1
	fi
	touch $(STAMP)
	echo "make setup: done ($$($(PY) --version))"

test: setup
	@status=0
	$(PY) -m pytest -q tests helpers || status=$$?
	# The notebooks share a fresh work folder: each builds what it needs, nothing stale is reused.
	export PD_WORKDIR=$$(mktemp -d)
	$(PY) -m pytest -q --nbmake notebooks/ --nbmake-timeout=900 || { rc=$$?; [ $$status -ne 0 ] || status=$$rc; }
	rm -rf "$$PD_WORKDIR"
	if [ $$status -ne 0 ]; then echo "make test: FAILED (see the pytest output above)" >&2; fi
	exit $$status

run: setup
	@$(PY) scripts/run_course.py

# Jupyter refuses to start as root (common in containers) without --allow-root; LAB_ARGS adds
# any other option: make lab LAB_ARGS="--no-browser --port 8890".
LAB_ARGS ?=
lab: setup
	@$(VENV)/bin/jupyter lab --notebook-dir=notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

bench: setup
	@$(PY) -m helpers.bench

lint: setup
	@$(VENV)/bin/ruff check .

clean:
	@rm -rf build .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -print0 | xargs -0 rm -rf

distclean: clean
	@rm -rf $(VENV)
