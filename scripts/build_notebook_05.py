"""Write notebooks/05_advanced.ipynb from the cells below (stored without outputs).

Edit the cells here and run ``.venv/bin/python scripts/build_notebook_05.py``; the
notebook is generated so that its text stays reviewable as plain Python. The
experiments themselves live in ``helpers/advanced.py``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parents[1] / "notebooks" / "05_advanced.ipynb"

CELLS = [
    new_markdown_cell(
        """# 05 · Advanced: the knobs of the recipe

The recipe so far had fixed settings: one teacher with one prompt, greedy answers, the whole
query pool, the default learning rate, one hard label per query. Each of those is a choice.
This notebook measures five of them, each with one experiment, one table and one picture:

1. **Teacher and prompt**: how much of the teacher's accuracy each part of the prompt buys.
2. **Sampling**: temperature and K-vote majority, as label noise and as the student they give.
3. **Data volume**: the student, and the classic baseline, against the number of teacher examples.
4. **Hyperparameters**: learning rate × LoRA rank (offline: × model size), as heat maps.
5. **Soft labels**: train on the teacher's *distribution* over the 13 labels, not its single answer.

Every experiment is a function in `helpers.advanced`; this notebook only calls them and shows
the results. Results are cached on disk, so a second run takes seconds. With the quick settings,
a first run takes three to five minutes offline on two idle CPU cores, by the CPU (longer on a busy machine)."""
    ),
    new_code_cell(
        """%matplotlib inline
from helpers import advanced as adv
from helpers import connect
from helpers.course import backend_note, save

service = connect()
QUICK = True  # reduced grids; False runs the full grids (long offline, many paid runs on Tinker)
print(backend_note(service))
print("results are cached in", adv.cache_dir())"""
    ),
    new_markdown_cell(
        """**How to read the numbers.** Students are scored on the **dev** gold set
(`data/dev_gold.jsonl`; with `QUICK`, every third row, 163 queries), never on the test set:
picking settings is tuning, and the test set is kept for the final evaluation of notebook 04.
*Accuracy* is against the gold labels, *agreement* is how often the student gives the
teacher's answer. Accuracy comes with a 95% bootstrap interval (Wilson's when every answer
is right, or every one wrong): on 163 queries, a few points of difference are noise. Each
student is also a single training run; another seed moves a small student by several points.
On Tinker, a teacher asked for K answers at once is asked without a seed: its server returns
copies of one answer to a seeded request for several.

**Offline** (no Tinker key), the teacher is the rule-based stand-in and the students are tiny
models trained from scratch on this CPU: the plots say so in their titles, and none of their
numbers are LLM results. The code is the same on Tinker, where teacher and student are LLMs,
and there even `QUICK = True` costs real money: it trains eleven LoRA students and asks the
teacher about 4,000 times with the long prompt (section 1: ten prompts and up to three other
teachers on the 163 dev queries; section 2: two labellings of 1,000 pool queries at T=1, the
second with five samples each; its T=0 labels are notebook 02's own), over a quarter of
notebook 02's full run. It works from the quick
1,200-query sample (`tinker-quick/`), and labels that sample first (1,200 more requests) if
notebook 02 ran on the whole pool. Check the price before you run it."""
    ),
    new_markdown_cell(
        """## 1. Teacher choice and prompt ablation

The long prompt costs every query about a thousand words (3,062 tokens with the offline
tokenizer; an LLM's tokenizer counts fewer); which of its rules earn their place?
We ask the teacher about the dev queries with the full prompt, with a one-line prompt
(`SHORT_PROMPT`), and with the full prompt minus one rule at a time. On Tinker the same table
also asks other chat models the server lists, with the full prompt (base models, which never
learned a chat turn, are left out; pass `teachers=[...]` to choose the models yourself);
offline there is only the stand-in, so that part is skipped."""
    ),
    new_code_cell(
        """ablation = adv.prompt_ablation(service, QUICK)
adv.show(ablation, ["teacher", "prompt", "accuracy", "unparsed", "prompt_tokens", "error"])"""
    ),
    new_code_cell(
        """fig = adv.plot_prompt_ablation(ablation)
save(fig, "05_prompt_ablation.png")
fig"""
    ),
    new_markdown_cell(
        """Offline, removing the **format** rule is the most dramatic: the stand-in still knows the
language but no longer writes `Final Answer: xx`, so nothing can be parsed (an LLM might still
name a label now and then). The other rules each fix one family of hard cases (code, other
Latin-script languages, scripts, romanised and short text), so removing one costs accuracy
mostly on those queries; the one-line prompt drops the whole policy at once, for a small
fraction of the tokens. Offline these numbers come from the stand-in, which executes exactly the
rules present in the prompt; an LLM teacher follows them less literally, so expect smaller and
noisier differences on Tinker, and differences between models as large as between prompts."""
    ),
    new_markdown_cell(
        """## 2. Sampling strategies: temperature and K-vote majority

At temperature 0 the teacher gives its single most likely answer. At temperature 1 it samples,
and some labels come out wrong; asking K times and keeping the majority removes much of that
noise again, at K times the sampling cost. The teacher labels the same 1,000 pool queries
with each strategy (the T=0 labels are notebook 02's, which was labelled just so: they are
not asked for again). *Label noise* is the share of its labels that differ from the label the
pool's writers gave each query (`label` in `data/queries.jsonl`, which the teacher never
sees): at T=0 it is where the teacher's reading of the policy and the writers' differ, and
what T=1 adds on top of that is sampling noise. Then a student is trained on each set of
labels; `same_as_first` is the share of dev queries on which it answers exactly as the T=0
student does."""
    ),
    new_code_cell(
        """sampling = adv.sampling_strategies(service, QUICK)
adv.show(sampling, ["strategy", "rows", "label_noise", "mean_confidence", "accuracy", "accuracy_low",
                    "accuracy_high", "agreement", "same_as_first"])"""
    ),
    new_code_cell(
        """print(adv.compare(sampling, "strategy"))
fig = adv.plot_sampling(sampling)
save(fig, "05_sampling.png")
fig"""
    ),
    new_markdown_cell(
        """The left panel is the clear one: sampling at T=1 adds label noise, and a majority of 5 votes
takes much of it back out (`mean_confidence` is the winning vote share: below 1, the teacher
hesitated). Whether a few points of label noise change the student is a question of scale, and
the lines printed under the table say whether this run can tell: a student whose accuracy
interval overlaps the first one's is not shown to be better or worse, however its point
estimate moves. Offline with `QUICK`, the tiny students are trained from scratch on 1,000 rows
for two epochs and reach well under 0.6 on dev; at that stage a small change of labels can move
a student's answers on a quarter of the queries (`same_as_first`) or on none, and the order of
the bars changes with the sample and the seed, so read the intervals, not the order.
`QUICK = False` trains on 2,000 rows for three epochs; on Tinker the student is an LLM that
knows the languages already, so there the right panel measures the labels rather than the
student's luck. Offline the noise comes from the stand-in's confidences, not from an LLM's
sampling."""
    ),
    new_markdown_cell(
        """## 3. Data volume

How many teacher examples does the student need? Both the student and the classic baseline
(character n-grams and logistic regression, trained on the same teacher labels) learn from the
first *n* rows of the distillation data, nested subsets of one shuffled pool, less the 10% the
student holds out for its validation loss, which the baseline leaves out too."""
    ),
    new_code_cell(
        """volume = adv.data_volume(service, QUICK)
adv.show(volume, ["predictor", "examples", "accuracy", "accuracy_low", "accuracy_high", "agreement", "seconds"])"""
    ),
    new_code_cell(
        """fig = adv.plot_data_volume(volume)
save(fig, "05_data_volume.png")
fig"""
    ),
    new_markdown_cell(
        """Offline, the tiny student starts from random weights, so it needs many examples. In our
quick run, with 150 none of its answers is a label yet (unparsed answers count as wrong); at
400 every answer is `ot`, the most common label, so its accuracy is the share of `ot` among the
dev rows; by a thousand it names the languages with scripts of their own and still answers `ot` to most of the rest. The
full offline run's student, on the whole pool, scores about 0.96 test accuracy (README,
Benchmarks). The baseline is strong from the start, because character n-grams are made for
this task. That is the offline picture, from a stand-in teacher and a from-scratch student.
An LLM student on Tinker already reads every language, so its curve starts high and what
more data buys is the prompt's *policy* on the hard cases."""
    ),
    new_markdown_cell(
        """## 4. Hyperparameters: learning rate × LoRA rank

A small grid around the recipe's defaults, every point trained on the same 1,000 examples with
10% held out: the final validation loss on those held-out examples, and dev accuracy. On Tinker
the rows are LoRA ranks. Offline the tiny models train all their weights (the rank is recorded
but unused), so the rows are two model sizes instead. The recipe's default is outlined in red.
The other experiments here train with the settings of one cell; where that cell is not the
default, it is outlined in orange. As shipped it is the default cell itself, on both backends."""
    ),
    new_code_cell(
        """grid = adv.hyperparameter_grid(service, QUICK)
adv.show(grid, ["model", "rank", "learning_rate", "val_loss", "val_accuracy", "accuracy", "agreement",
                "default", "student"])"""
    ),
    new_code_cell(
        """fig = adv.plot_hyperparameters(grid)
save(fig, "05_hyperparameters.png")
fig"""
    ),
    new_markdown_cell(
        """Read the two maps together: where the validation loss is low, accuracy is high. Offline, in
our quick run, the local default of 3e-3 (the box marked "default") does better than 1e-3 for both models, and at 1e-3 the
smaller model has not yet learnt to answer with a label at all (every answer unparsed). So the
other experiments here train at 3e-3, in batches of 8 so that a thousand rows still make a few
hundred steps. On Tinker, LoRA's learning rate matters far
more than its rank: expect rows that look alike and columns that do not. A grid is only as
good as its budget: each cell is one short run on the tiny offline models."""
    ),
    new_markdown_cell(
        """## 5. Soft-label distillation

The teacher's single answer throws information away: on an ambiguous query it may be 60% sure
of `es` and 40% of `ot`. Soft-label distillation trains the student on that distribution. We
estimate it from K samples at temperature 1 (vote shares, on any backend; on Tinker one could
also read the log-probabilities of the label tokens after `Final Answer:`) and turn each query
into one row per label, weighted by its share. The trainer multiplies every row's loss by its
weight, so the rows of one query add up to
$-\\sum_{y} p_{\\text{teacher}}(y)\\,\\log p_{\\text{student}}(y)$: exactly the cross-entropy against
the teacher's distribution. These are the queries the teacher is least sure of (offline, from a
few samples of the stand-in, whose spread is partly synthetic: see the note after the results):"""
    ),
    new_code_cell(
        """adv.show(adv.label_distributions(service, QUICK))"""
    ),
    new_code_cell(
        """soft = adv.soft_labels(service, QUICK)
adv.show(soft, ["targets", "queries", "rows", "mean_entropy", "accuracy", "accuracy_low", "accuracy_high",
                "agreement"])"""
    ),
    new_code_cell(
        """print(adv.compare(soft, "targets"))
fig = adv.plot_soft_labels(soft)
save(fig, "05_soft_labels.png")
fig"""
    ),
    new_markdown_cell(
        """Three students learned from the same queries for about the same number of steps: the greedy
answer (*hard*), the majority of the K samples (*majority*) and their vote shares (*soft*; its
batches are larger by the ratio of rows to queries, rounded to a whole number, so each step
still covers about the same number of queries). Offline the stand-in's spread is partly synthetic: when one of its rules overrides the
detector, it keeps a fixed 15% for the detector's other guesses, and the small student spends
capacity learning that spread. So read little into the order of the three rows here: the
lines under the table say whether their intervals overlap in this run, the quick students
are weak enough for one sample of rows to favour any of the three, and on the whole pool
soft labels did worse offline (README, Benchmarks). Soft labels pay off when the teacher's uncertainty means
something, as with an LLM teacher on genuinely ambiguous queries.

## What next

- `QUICK = False` runs the full grids: more data sizes, sampling strategies, learning rates and
  models (offline this takes an hour or more; on Tinker, many training runs).
- Every function takes its grid as arguments, for example
  `adv.data_volume(service, sizes=[100, 300])` or
  `adv.hyperparameter_grid(service, learning_rates=[1e-4, 3e-4])`; points already computed come
  from the cache. Sizes larger than the data are clipped to it: the quick data is a
  1,200-query sample, and `QUICK = False` labels the whole pool.
- More data than the pool holds: `data/src/reserve` has 6,115 more sentences written for this
  course, and `python scripts/build_data.py --with-reserve --pool-out larger.jsonl` builds a
  22,342-query pool with them (52% more) for
  `python -m helpers generate --queries larger.jsonl --out larger_distill.jsonl`.
  The README's Benchmarks give what it buys offline, at full size: within the three-minute
  training budget nothing, and with two thirds more time about half a point of agreement.
- To start over, delete the cache folder printed at the top."""
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
        cell["id"] = f"advanced-{i:02d}"  # stable ids keep diffs small when the script is re-run
    return nb


if __name__ == "__main__":
    nb = build()
    nbformat.validate(nb)
    OUT.parent.mkdir(exist_ok=True)
    nbformat.write(nb, OUT)
    print(f"wrote {OUT} ({len(nb.cells)} cells)")
