"""Write notebooks/00_setup.ipynb from the cells below (stored without outputs).

Edit the cells here and run ``.venv/bin/python scripts/build_setup_notebook.py``; the
notebook is generated so that its text stays reviewable as plain Python.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parents[1] / "notebooks" / "00_setup.ipynb"

CELLS = [
    new_markdown_cell(
        """# 00 · Set-up: is everything in place?

This course teaches **prompt distillation**. A *teacher* model answers queries with a long,
carefully written prompt; a *student* model is then fine-tuned on the teacher's answers
*without* that prompt, so it behaves as if it had read it while paying for none of its tokens.
Our task is language identification with 13 labels (`ar de el en es fr hi ru tr ur vi zh`,
and `ot` for anything else).

This notebook trains nothing. It checks the environment, shows which backend the course
will use and why, and gives the road map. It runs offline in a few seconds."""
    ),
    new_markdown_cell(
        """## 1. Python and the packages

The course needs Python 3.11 or newer and the packages from `pyproject.toml`, installed
into `.venv` by `make setup`. If a line below says *missing*, run `make setup` in a terminal
and restart the kernel. The core packages are imported, not just looked up: a half-installed
package fails here rather than in the middle of training."""
    ),
    new_code_cell(
        """import sys

assert sys.version_info >= (3, 11), f"the course needs Python >= 3.11, this kernel runs {sys.version.split()[0]}"
print(f"Python {sys.version.split()[0]} at {sys.executable}")"""
    ),
    new_code_cell(
        """import importlib
from importlib.metadata import PackageNotFoundError, version

# distribution -> module to import; None: only look the version up (importing peft takes ~10 s)
PACKAGES = {
    "torch": "torch",
    "transformers": "transformers",
    "tinker": "tinker",
    "lingua-language-detector": "lingua",
    "prompt-distillation-course": "helpers",
    "peft": None,
    "scikit-learn": None,
    "matplotlib": None,
    "ipywidgets": None,
}
for dist, module in PACKAGES.items():
    try:
        if module:
            importlib.import_module(module)
        found = version(dist)
    except (ImportError, PackageNotFoundError) as e:
        found = f"missing ({e.__class__.__name__}): run `make setup`"
    print(f"{dist:28} {found}")"""
    ),
    new_code_cell(
        """import torch

print("PyTorch build:", torch.__version__, "| CPU threads:", torch.get_num_threads(),
      "| CUDA available:", torch.cuda.is_available())"""
    ),
    new_markdown_cell(
        """## 2. Which backend the course will use

Every notebook talks to one interface, Tinker's client (`ServiceClient`, `SamplingClient`,
`TrainingClient`), and `helpers.connect()` decides what is behind it:

| backend | what runs the models | chosen when |
|---|---|---|
| `tinker` | real LLMs on a Tinker server | `TINKER_API_KEY` is set |
| `local` | an in-process copy of the interface on PyTorch, on this CPU | no key is set |

`PD_BACKEND=local` or `PD_BACKEND=tinker` overrides the choice, for example to stay offline
with a key in your environment. The cell below asks the same function `connect()` uses."""
    ),
    new_code_cell(
        """import os

from helpers.backend import choose_backend, shown_url

backend, why = choose_backend()
print(f"backend: {backend} (because {why})")
# Only whether a key is there: the key itself is never printed.
print("Tinker API key present:", bool(os.environ.get("TINKER_API_KEY")))
# A gateway's URL may carry a user and token: shown_url shows the server, not them.
print("TINKER_BASE_URL:", shown_url(os.environ.get("TINKER_BASE_URL") or "not set (Tinker's own server)"))"""
    ),
    new_markdown_cell(
        """**Offline, be clear about what you are looking at.** No model that fits on a laptop
CPU can follow a long prompt, so offline the *teacher* is a stand-in: it applies the prompt's
stated policy (set URLs and numbers aside; judge code by its comments; a single word or a
romanised message is `ot`; ...) on top of an established language detector, `lingua`. The *student* is a tiny byte-level model trained
from scratch. The recipe, the code and the measurements are the real ones; the numbers are
not those of an LLM teacher and student. With a Tinker key, the same notebooks run on real
LLMs without edits."""
    ),
    new_markdown_cell(
        """## 3. Setting your Tinker key

The key is read from the environment variable `TINKER_API_KEY`. Never paste it into a code
cell as text: cells and their outputs get saved, committed and shared.

- **Best:** set it in the terminal before starting JupyterLab, so every notebook sees it:
  `export TINKER_API_KEY=...` then `make lab`.
- **In a notebook:** the box below puts the key into this kernel's environment without
  showing it, then empties itself. Each notebook runs in its own kernel, so this lasts for
  this notebook only. `getpass` does the same without a widget:
  `os.environ["TINKER_API_KEY"] = getpass.getpass("Tinker API key: ")`.
- **Another server:** any Tinker-compatible server works; point the course at it with
  `TINKER_BASE_URL` (for example `export TINKER_BASE_URL=https://my-server.example/`).
- **Stay offline:** `PD_BACKEND=local` keeps everything on this machine even with a key set."""
    ),
    new_code_cell(
        """import ipywidgets as widgets

key_box = widgets.Password(description="Tinker key", placeholder="paste your key, then Use")
use_button = widgets.Button(description="Use", tooltip="Set TINKER_API_KEY for this kernel")
status = widgets.Label()


def use_key(_button=None):
    if key_box.value:
        os.environ["TINKER_API_KEY"] = key_box.value
    key_box.value = ""  # the key now lives only in this kernel's environment, not in the widget
    now, reason = choose_backend()
    status.value = f"key present: {bool(os.environ.get('TINKER_API_KEY'))}; backend: {now} ({reason})"


use_button.on_click(use_key)
widgets.HBox([key_box, use_button, status])"""
    ),
    new_markdown_cell(
        """With a key set, the next cell asks the server once which models it offers: a wrong or
expired key shows up here, in one line, rather than in the middle of notebook 01. Offline it
lists the local backend's models."""
    ),
    new_code_cell(
        """from helpers import connect
from helpers.backend import BackendError, supported_models

try:
    service = connect()
    models = supported_models(service)
    where = "Tinker answered, the key works" if service.backend == "tinker" else "the local backend"
    print(f"{where}: {len(models)} models offered, e.g. {', '.join(models[:4])}")
except BackendError as e:  # one line, never the key
    print("cannot use this backend:", e)"""
    ),
    new_markdown_cell(
        """## 4. The data

The course ships its own data in `data/`, written for this project: a pool of queries for the
teacher to label, and two gold-labelled sets (dev, for working on the prompt; test, for the
final evaluation only). Counting them checks that the files are in place and readable."""
    ),
    new_code_cell(
        """from collections import Counter
from pathlib import Path

from helpers.dataio import read_gold, read_queries
from helpers.labels import LABELS

DATA = Path("..") / "data"  # notebooks run from notebooks/
print(f"queries.jsonl    {len(read_queries(DATA / 'queries.jsonl')):5} queries for the teacher to label")
for name in ("dev_gold.jsonl", "test_gold.jsonl"):
    counts = Counter(row["label"] for row in read_gold(DATA / name))
    print(f"{name:16} {counts.total():5} gold rows: " + " ".join(f"{label} {counts[label]}" for label in LABELS))"""
    ),
    new_markdown_cell(
        """## 5. The road map

| notebook | what you do there |
|---|---|
| `01_teacher_prompt` | Why a long prompt is costly; build the teacher prompt from named rules, count its tokens, measure the teacher on the dev set and read its mistakes; switch a rule off and see what changes. |
| `02_generate_data` | Let the teacher label the query pool: progress, interruption and resume, sampling strategies (temperature, votes, agreement filter), the label distribution, the exported chat file. |
| `03_train_student` | Anatomy of one training example, the check that sampling and training see the same tokens, and the student's fine-tuning with live loss and validation curves. |
| `04_evaluate` | Teacher, base model and student side by side in confusion matrices; agreement, errors, and the prompt tokens (and money) saved per query. |
| `05_advanced` | The knobs: teacher choice, sampling, data volume, hyperparameters, and soft-label distillation. |

Open `01_teacher_prompt.ipynb` next. To run the whole course headless instead, type
`make run` in a terminal: the executed notebooks and figures land in `build/`."""
    ),
]


def build() -> nbformat.NotebookNode:
    nb = new_notebook(cells=CELLS)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"setup-{i:02d}"  # stable ids keep diffs small when the script is re-run
    return nb


if __name__ == "__main__":
    nb = build()
    nbformat.validate(nb)
    OUT.parent.mkdir(exist_ok=True)
    nbformat.write(nb, OUT)
    print(f"wrote {OUT} ({len(nb.cells)} cells)")
