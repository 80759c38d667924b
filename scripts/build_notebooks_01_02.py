"""Write notebooks/01_teacher_prompt.ipynb and notebooks/02_generate_data.ipynb (stored without outputs).

Edit the cells here and run ``.venv/bin/python scripts/build_notebooks_01_02.py``; the
notebooks are generated so that their text stays reviewable as plain Python, and cell ids
are stable so that re-running the script changes only what was edited.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

TEACHER = [
    new_markdown_cell(
        """# 01 · The teacher and its prompt

Prompt distillation starts with a *teacher*: a model that does the task well because it
reads a long, careful prompt with every query. Our task is language identification with 13
labels, twelve languages and `ot` for everything else:

`ar` Arabic · `de` German · `el` Greek · `en` English · `es` Spanish · `fr` French ·
`hi` Hindi · `ru` Russian · `tr` Turkish · `ur` Urdu · `vi` Vietnamese ·
`zh` Chinese · `ot` other or unknown

The labels are the easy part. The prompt's real work is the *policy* for the hard cases:
what is the language of a line of code, a URL, a price, romanised Hindi, a sentence half in
English and half in French, a single word? This notebook looks at the prompt, counts what it
costs, measures the teacher on a gold-labelled dev set, and lets you switch the prompt's
rules off one by one to see what each one buys.

It takes about half a minute offline."""
    ),
    new_code_cell(
        """%matplotlib inline
import statistics
from collections import defaultdict

from IPython.display import Markdown
from matplotlib.figure import Figure

import helpers
import helpers.course
from helpers.dataio import read_gold
from helpers.evaluate import PRICES, default_models, error_table, markdown_table, predict
from helpers.prompt import DEFAULT_PROMPT, RULES, SHORT_PROMPT, count_tokens, get_rule
from helpers.widgets import TeacherPlayground

service = helpers.connect()
print(helpers.course.backend_note(service))"""
    ),
    new_markdown_cell(
        """## 1. The prompt, built from named rules

The prompt is not one block of text. It is an introduction followed by a list of named
rules, each a short section of policy: what counts as noise, how to read code, which
writing systems settle the question, and so on. Because each rule has a name, we can show
it, switch it off or edit it and measure what changes, which is how you would work on a
prompt in practice.

Lengths are counted with the teacher's own tokenizer. Offline that is the tiny local
model's byte-level tokenizer, which cuts text into more pieces than an LLM's would; on
Tinker it is the teacher LLM's tokenizer."""
    ),
    new_code_cell(
        """teacher_model = default_models(service.backend)["teacher"]
tokenizer = service.create_sampling_client(base_model=teacher_model).result().get_tokenizer()
Markdown(markdown_table([{"rule": rule.name, "what it covers": rule.title,
                          "tokens": count_tokens(tokenizer, rule.render())} for rule in RULES]))"""
    ),
    new_markdown_cell(
        """Here is one rule as the teacher reads it. Notice how specific it is: English-looking
identifiers do not make code English, and code without comments or strings is `ot`. A model
would not guess this policy on its own; the prompt has to say it."""
    ),
    new_code_cell("""print(get_rule("code").render())"""),
    new_markdown_cell(
        """## 2. What the prompt costs

The teacher reads the whole prompt again with *every* query. A typical query is a few dozen
tokens; the prompt is about a thousand words, which the next cell counts in tokens. So the
prompt, not the query, is what you pay for, and the bill grows with the number of queries. The one-line `SHORT_PROMPT` beside it is what a
prompt without the policy would cost."""
    ),
    new_code_cell(
        """dev = read_gold(helpers.course.DATA / "dev_gold.jsonl")
full, short = count_tokens(tokenizer, DEFAULT_PROMPT), count_tokens(tokenizer, SHORT_PROMPT)
query = statistics.median(count_tokens(tokenizer, row["text"]) for row in dev)
print(f"teacher prompt: {full} tokens; one-line prompt: {short}; median dev query: {query:.0f} tokens")
pool = len(helpers.course.query_pool(quick=False))
Markdown(markdown_table([{"queries": f"{n:,}", "prompt tokens (teacher prompt)": f"{n * full:,}",
                          "query tokens": f"{round(n * query):,}"} for n in (1, pool, 1_000_000)]))"""
    ),
    new_markdown_cell(
        """The middle row is our query pool: labelling it once costs millions of prompt tokens.
That is acceptable for a one-off data set, but not for every query a product ever answers.
Prompt distillation pays the prompt's price once, to make training data, and then trains a
student that answers the bare query. Notebook 04 counts the saving per query for both
models.

## 3. The teacher on the dev set

`data/dev_gold.jsonl` holds 487 queries labelled by hand according to the policy, each with
a `kind`: `natural` sentences in the twelve languages, `other` languages, and `edge:` cases
(code, noise, mixed, romanised, short, no language at all). It is the set to look at while
working on the prompt; the test set stays untouched until notebook 04.

**Offline, the teacher is not an LLM.** It is a rule-based stand-in that executes the
prompt's policy on top of the `lingua` language detector, so the accuracy below measures the
stand-in, not a language model reading the prompt. Its first answers in a kernel take about
ten seconds while `lingua` loads its language models, then hundreds come per second. On
Tinker the same cells measure the teacher LLM.

Accuracy alone hides where the errors are, so the picture splits it by kind (the number of
queries of each kind is in brackets). For an LLM teacher, natural sentences are usually easy
and the edge cases are where the prompt earns its keep. The offline stand-in executes the
policy directly, so it is near perfect almost everywhere; its weak spot is very short input."""
    ),
    new_code_cell(
        """answers = predict("teacher", [row["text"] for row in dev], service)
correct = defaultdict(list)
for row, answer in zip(dev, answers, strict=True):
    correct[row["kind"]].append(answer.label == row["label"])
accuracy = sum(map(sum, correct.values())) / len(dev)
print(f"teacher ({teacher_model}) accuracy on dev: {accuracy:.3f} over {len(dev)} queries")"""
    ),
    new_code_cell(
        """kinds = sorted(correct, key=lambda kind: sum(correct[kind]) / len(correct[kind]))
fig = Figure(figsize=(7, 3.2), layout="constrained")
ax = fig.subplots()
bars = ax.barh([f"{kind} ({len(correct[kind])})" for kind in kinds], [sum(correct[k]) / len(correct[k]) for k in kinds])
ax.bar_label(bars, fmt="%.2f", padding=3)
ax.set(xlim=(0, 1.1), xlabel="accuracy on dev", title=f"Teacher ({teacher_model}) on dev, by kind")
helpers.course.save(fig, "01_teacher_by_kind.png", service)
fig"""
    ),
    new_markdown_cell(
        """## 4. The teacher's mistakes

Reading the mistakes is how a prompt gets better: each one is either a gap in the policy
(add or sharpen a rule) or a case the teacher cannot get right however the prompt is worded.
Offline, the stand-in's answer starts with the rule that decided, which tells you where to
look. On Tinker the answer column shows the start of the LLM's reasoning."""
    ),
    new_code_cell(
        """errors = error_table([row["text"] for row in dev], [row["label"] for row in dev], {"teacher": answers})
Markdown(markdown_table([{**error, "kind": dev[error["index"]]["kind"], "teacher's answer": answers[error["index"]].raw}
                         for error in errors], max_rows=8, max_chars=60))"""
    ),
    new_markdown_cell(
        """## 5. A playground

`TeacherPlayground` holds the teacher and a prompt whose rules can be switched off. Its
`classify` method asks the teacher about one text under the current prompt. A few texts
first, asked from code so that the answers show in any copy of this notebook:"""
    ),
    new_code_cell(
        """playground = TeacherPlayground(service)
texts = ["Wie spät ist es in Berlin?", "SELECT name FROM users WHERE id = 7;", "kya haal hai bhai",
         "Привіт, як справи?", "Domani andiamo al mare con i bambini.", "@anna see you at 5pm 🎉"]
results = [playground.classify(text) for text in texts]
Markdown(markdown_table([{"text": r["text"], "label": r["label"], "teacher's answer": r["raw"]} for r in results], max_chars=70))"""
    ),
    new_markdown_cell(
        """Now your turn. Type a text in the box and press Enter: the teacher answers (offline, with the rule
that decided). Untick a rule to take it out of the prompt; the answer is recomputed under the
shorter prompt. **Re-measure** scores the teacher on a third of the dev set (163 queries)
with the rules that are ticked. Things to try: a line of code without comments, a Portuguese
or Italian sentence, a Ukrainian one, a price with a currency sign, two languages in one
sentence. (The widget needs a running kernel; in a saved copy of the notebook it is blank.)"""
    ),
    new_code_cell("""playground.widget(dev[::3])"""),
    new_markdown_cell(
        """## 6. What one rule buys

The same experiment without the widget, so its result is written down. We switch off two
rules, `code` and `latin`, one at a time, and ask the teacher about two texts that need them:
a code snippet, and an Italian sentence (Italian is not one of the labels, so the policy
says `ot`)."""
    ),
    new_code_cell(
        """ablation = TeacherPlayground(service)  # a second playground, so the widget above keeps its own settings
examples = ["for item in items:\\n    print(item.name)", "Domani andiamo al mare con i bambini."]
switched_off = {"full prompt": [], "without code": ["code"], "without latin": ["latin"]}
table = [{"text": text} for text in examples]
for column, rules in switched_off.items():
    ablation.set_disabled(rules)
    for row in table:
        row[column] = ablation.classify(row["text"])["label"]
Markdown(markdown_table(table))"""
    ),
    new_markdown_cell(
        """Without the `code` rule the stand-in reads identifiers such as `item` and `print` as
English words; without the `latin` rule it forces Italian into one of the twelve language
labels, the one the detector finds least unlikely (the table shows which). Offline
the stand-in executes the rules literally, so a missing rule is simply not applied. A real
LLM has its own ideas about code and Italian and may still answer `ot` without the rule:
with it, it behaves by *our* policy instead of guessing.

One example is an anecdote; the dev set gives the size of the effect. The same third of dev
(163 queries), with each prompt:"""
    ),
    new_code_cell(
        """subset = dev[::3]
scores = []
for column, rules in switched_off.items():
    ablation.set_disabled(rules)
    scores.append({"prompt": column, "tokens": count_tokens(tokenizer, ablation.prompt),
                   "dev accuracy (163 queries)": ablation.measure(subset)})
Markdown(markdown_table(scores))"""
    ),
    new_markdown_cell(
        """Each rule costs tokens on every query and buys accuracy on the cases it covers. Offline,
these are the stand-in's numbers, not an LLM's; notebook 05 repeats the experiment for every
rule. Next, `02_generate_data.ipynb`: the teacher labels the whole query pool, and its
answers become the student's training data.

## Exercises

**1. Predict, then check.** Write down the label *you* expect under the policy before the
teacher answers: that is how you find the places where the prompt says something other than
what you meant. The cell holds a few cases to start from; replace them with your own (a
sentence in a language near a label, a price, a name, a line of shell, emoji). A mismatch is
either a surprise in the policy (read the rule that decided) or a teacher mistake (a case
for the prompt, or for the error table of section 4).

<details><summary>What to look for</summary>

Offline, the first line of each answer names the rule that decided, so you can read that
rule with `get_rule(name).render()`. Short inputs are where expectation and policy part most
often: a single word is `ot`, but a common two-word phrase such as "Buenos días" is not. On
Tinker, the first line is the start of the LLM's reasoning, and a mismatch there may also
be the LLM not following the prompt.
</details>"""
    ),
    new_code_cell(
        """my_cases = [  # (text, the label you expect)
    ("Olá, tudo bem com você?", "ot"),
    ("Das kostet 12,50 € pro Stück.", "de"),
    ("merci", "ot"),
    ("Buenos días", "es"),
    ("Aaj mausam bahut accha hai", "ot"),
    ("東京タワーに行きました", "ot"),
]
checker = TeacherPlayground(service)  # the full prompt, whatever the widget above is set to
table = [{"text": text, "you": expected, "teacher": (answer := checker.classify(text))["label"],
          "same": answer["label"] == expected,
          "teacher's first line": answer["raw"].strip().splitlines()[0] if answer["raw"].strip() else ""}
         for text, expected in my_cases]
print(f"the teacher agrees with you on {sum(row['same'] for row in table)} of {len(table)}")
Markdown(markdown_table(table, max_chars=60))"""
    ),
    new_markdown_cell(
        """**2. What each rule costs a year.** A rule is paid for on every query the teacher
answers. Take a product that sends 100,000 queries a day to the teacher, and the
example price of `helpers.evaluate.PRICES` (an EXAMPLE, not anyone's list price: put in
yours). Which rules cost the most? Compare with what each rule buys on the dev set (section
6, and every rule in notebook 05). After distillation, the student pays for none of them;
what is paid once is the teacher labelling the pool, every query with the whole prompt.

<details><summary>What to look for</summary>

The cost of a rule is its length times the traffic, so the long rules dominate whatever they
buy. Labelling the pool once costs about what the prompt costs in a few hours of this
traffic; training the student and its own (short) queries come on top (notebook 04, section
7). Offline the token counts are the tiny model's byte-level tokenizer's, which cuts text
into more pieces than an LLM's would; on Tinker they are the teacher's own.
</details>"""
    ),
    new_code_cell(
        """queries_per_day = 100_000
usd_per_token = PRICES["teacher"] / 1e6  # EXAMPLE price: edit helpers.evaluate.PRICES or this line
yearly = [{"rule": rule.name, "tokens": (n := count_tokens(tokenizer, rule.render())),
           "USD a year (EXAMPLE price)": round(n * queries_per_day * 365 * usd_per_token)} for rule in RULES]
yearly.sort(key=lambda row: -row["tokens"])
counted = ("; offline token counts, the tiny model's tokenizer, not an LLM's"
           if helpers.course.is_offline(service) else "")
print(f"the whole prompt: {full * queries_per_day * 365 * usd_per_token:,.0f} USD a year "
      f"at {queries_per_day:,} queries a day (EXAMPLE price {PRICES['teacher']} USD per million tokens{counted})")
print(f"labelling the {pool:,}-query pool once: {pool * full * usd_per_token:,.2f} USD, the prompt's cost of "
      f"{24 * pool / queries_per_day:.1f} hours of this traffic")
Markdown(markdown_table(yearly, max_rows=None))"""
    ),
]

GENERATE = [
    new_markdown_cell(
        """# 02 · Generating the distillation data

The teacher from notebook 01 now labels a pool of queries. Each (query, label) pair,
*without* the prompt, becomes one training example for the student. This notebook looks at
the pool, runs the generation with a progress bar, interrupts a run on purpose and resumes
it, compares sampling strategies (temperature, several votes per query, an agreement
filter), and ends with the exported file that notebooks 03 and 04 read.

**Offline, the teacher is the rule-based stand-in** (the prompt's policy on top of the
`lingua` detector), not an LLM, and generation uses a quick sample of 1,200 queries from the
pool (its size is printed below). Every count below is the stand-in's. With a Tinker key the
same cells run the teacher LLM on the whole pool: 14,660 paid calls, each with the long
prompt. Section 2 counts their tokens before sending any, so run the notebook cell by cell,
not all at once, to read that count first (`PD_QUICK=1` in the environment keeps to the
1,200-query sample on Tinker too). The notebook takes under a minute offline, ten seconds of
it at the first labelling, while the stand-in's detector loads its language models."""
    ),
    new_code_cell(
        """%matplotlib inline
import asyncio
import json
import statistics
from collections import Counter

import numpy as np
from IPython.display import Markdown
from matplotlib.figure import Figure

import helpers
import helpers.course
from helpers.dataio import iter_jsonl, read_conversations, read_gold, read_queries
from helpers.evaluate import default_models, markdown_table
from helpers.generate import GenerateConfig, GenerateSummary, generate, generate_async
from helpers.labels import LABELS
from helpers.teacher import script_counts

service = helpers.connect()
print(helpers.course.backend_note(service))
teacher_model = default_models(service.backend)["teacher"]
teacher = service.create_sampling_client(base_model=teacher_model).result()
workdir = helpers.course.run_dir(service)  # this backend's own folder: offline files never stand in for Tinker's"""
    ),
    new_markdown_cell(
        """## 1. The query pool

The student learns only what the pool shows it. So the pool is built to cover the policy:
natural sentences in the twelve languages, sentences in about 40 languages *outside* the
label set (so the student learns `ot`), and edge cases (code, noise such as URLs and
numbers, mixed and romanised text, very short inputs). Every query carries its `kind` and
`source`, for reference only; the teacher sees the text alone.

The second picture shows the lengths, from a single character to long sentences and code
snippets (on a logarithmic scale). Short inputs matter because the policy treats them
specially: a single word is `ot`."""
    ),
    new_code_cell(
        """pool = read_queries(helpers.course.DATA / "queries.jsonl")
kinds = Counter(query["kind"] for query in pool)
scripts = Counter(max(counts, key=counts.get) if (counts := script_counts(query["text"])) else "no letters" for query in pool)
fig = Figure(figsize=(11, 3.6), layout="constrained")
for ax, (title, counts) in zip(fig.subplots(1, 2), [("kind of query", kinds), ("main writing system", scripts)], strict=True):
    names = sorted(counts, key=counts.get)
    ax.barh(names, [counts[name] for name in names])
    ax.set(title=f"{len(pool):,} queries by {title}", xlabel="queries")
helpers.course.save(fig, "02_pool.png")
fig"""
    ),
    new_code_cell(
        """lengths = [len(query["text"]) for query in pool]
fig = Figure(figsize=(7, 3), layout="constrained")
ax = fig.subplots()
ax.hist(lengths, bins=np.geomspace(1, max(lengths), 40))
ax.set(xscale="log", xlabel="characters per query (log scale)", ylabel="queries", title="Query lengths")
print(f"median {statistics.median(lengths):.0f} characters; shortest {min(lengths)}, longest {max(lengths)}")
helpers.course.save(fig, "02_lengths.png")
fig"""
    ),
    new_markdown_cell(
        """## 2. Generation

`helpers.generate.generate` sends each query to the teacher with the long prompt, many at a
time, and parses every answer with the course's one label parser. It writes three files
beside its output: a journal (`.partial`) while it runs, the queries it could not label
(`.rejects.jsonl`), and a summary (`.summary.json`). The progress bar shows the rate and the
time left.

`ensure_distillation_data` runs it on the course's pool into the work folder, as
`distill.jsonl`, the file notebooks 03 and 04 train and evaluate on. Each backend has its
own folder (`runs/course/local-quick/` offline, `runs/course/tinker/` with a key), so labels
made offline never stand in for an LLM teacher's. If the file is already there (you ran this
notebook before), it is kept and only its summary is shown; if some requests failed then (the
summary's `error` and `retries_exhausted` rejects), this notebook asks those queries again
(`retry_failed=True`). Notebooks 03 to 05 use the file as it is.

First, what the run will send. `helpers.generate.estimate` takes `generate`'s arguments
(all but `progress` and `max_context`) and asks nothing: it counts the requests still to make (none if the file is
there and complete; only the missing or failed ones after an interruption or failures) and their prompt tokens, exactly, with
the teacher's own tokenizer. On Tinker these are what you pay for: multiply by your model's
price per million tokens before you run the next cell. From a terminal,
`python -m helpers generate ... --estimate` prints the same line. The count is this run's
alone: sections 3 and 5 ask the teacher again, 300 queries once and 150 queries three
times (the third with 5 answers each), with the same prompt. (Offline the count is the tiny
model's tokenizer's, which splits text into more pieces than an LLM's.)"""
    ),
    new_code_cell(
        """print(helpers.course.distillation_estimate(service, retry_failed=True))"""
    ),
    new_code_cell(
        """path = helpers.course.ensure_distillation_data(service, retry_failed=True)
summary = GenerateSummary.from_dict(json.loads(path.with_name(path.name + ".summary.json").read_text()))
print(summary)"""
    ),
    new_markdown_cell(
        """## 3. Interrupted, then resumed

A real generation run takes hours and meets rate limits, a dead kernel or a closed laptop.
So every answer is appended to the journal the moment it arrives, and a second run with the
same teacher, prompt and settings asks only for what is missing.

To see it happen, we label 300 queries through a teacher that answers 0.2 s late (a
`LatencyTeacher`, as a server would) and stop the run once 80 answers are in, as Ctrl-C or
the stop button would. The cell starts from scratch each time, so the interruption is real.
After the stop, the output file does not exist: it is only written, in one piece, when every
query is done. What survived is the journal, one line per answered query, with the
teacher's raw answer and its votes."""
    ),
    new_code_cell(
        """from helpers.generate import LatencyTeacher

slow_teacher = LatencyTeacher(teacher, delay=0.2)  # answers like the teacher, 0.2 s later
demo, demo_queries = workdir / "interrupted.jsonl", helpers.course.query_pool(quick=True)[:300]
for old in workdir.glob("interrupted.jsonl*"):
    old.unlink()  # start from scratch each time
run = asyncio.ensure_future(generate_async(slow_teacher, demo_queries, demo, config=GenerateConfig(concurrency=16)))
journal = demo.with_name(demo.name + ".partial")
while not run.done() and (not journal.exists() or journal.read_bytes().count(b"\\n") < 80):
    await asyncio.sleep(0.05)  # counted, not timed: a first answer may wait seconds for the detector to load
run.cancel()  # what Ctrl-C or the stop button does to the run
try:
    await run
except asyncio.CancelledError:
    print("stopped before the end")
lines = journal.read_text(encoding="utf-8").splitlines()
print(f"{demo.name} exists: {demo.exists()}; journal: {len(lines)} of {len(demo_queries)} queries answered")
json.loads(lines[0]) if lines else "(nothing answered yet)\""""
    ),
    new_markdown_cell(
        """Running the same call again resumes. `resumed` counts the answers taken from the
journal, `labelled` the ones asked now; the final file is byte for byte what one
uninterrupted run would have written (a test in `tests/test_generate.py` checks this even
after `kill -9`)."""
    ),
    new_code_cell(
        """resumed = await generate_async(slow_teacher, demo_queries, demo, config=GenerateConfig(concurrency=16))
print(f"resumed {resumed.resumed} answers from the journal, asked {resumed.labelled} more; "
      f"{resumed.rows} rows in {demo.name}; journal left behind: {journal.exists()}")"""
    ),
    new_markdown_cell(
        """## 4. The labels the teacher gave

The student learns this distribution. `ot` is the largest class on purpose: other
languages, code, noise, romanised and very short text all belong there. A label with very
few rows would be hard for the student to learn; this is the place to notice it and add
queries to the pool. (Offline: the stand-in's labels.)"""
    ),
    new_code_cell(
        """fig = Figure(figsize=(8, 3), layout="constrained")
ax = fig.subplots()
bars = ax.bar(LABELS, [summary.labels[label] for label in LABELS])
ax.bar_label(bars, padding=2, fontsize=8)
ax.set(ylabel="rows", title=f"Teacher labels in distill.jsonl ({summary.rows} rows, {summary.teacher})")
helpers.course.save(fig, "02_labels.png", service)
fig"""
    ),
    new_markdown_cell(
        """## 5. Sampling strategies

So far the teacher answered greedily (temperature 0): always its single most likely label.
Two other strategies, on 150 queries of the pool:

- **one sample at temperature 1**: the label is drawn from the teacher's distribution, so an
  unsure teacher sometimes gives a different label. That is label noise for the student.
- **five votes at temperature 1**: five samples per query, the majority label wins, and its
  vote share is the row's *confidence*. With `min_agreement=0.8`, a query whose winner has
  fewer than 4 of 5 votes is dropped instead of becoming a doubtful training example.

Offline, the stand-in's uncertainty comes from the detector's confidence per language, not
from an LLM's token probabilities. The detector's doubts about languages outside the label
set all count towards `ot`, so at temperature 1 even a plain sentence can come out as `ot`
now and then.

The table counts rows, drops and labels that differ from the greedy ones; the picture shows
how sure the teacher was: the winning label's share of the five votes for every query. 5/5
is a unanimous teacher; queries left of the dashed line fell under `min_agreement`."""
    ),
    new_code_cell(
        """subset = helpers.course.query_pool(quick=True)[:150]
strategies = {"greedy": GenerateConfig(temperature=0.0),
              "one sample": GenerateConfig(temperature=1.0),
              "5 votes": GenerateConfig(temperature=1.0, num_samples=5, min_agreement=0.8)}
# one file per strategy; after changing a setting, rename its file (or pass overwrite=True)
runs = {name: generate(teacher, subset, workdir / f"sampling_{name.replace(' ', '_')}.jsonl", config=config, progress=False)
        for name, config in strategies.items()}
labels = {name: {row["messages"][0]["content"]: row["messages"][-1]["content"] for row in read_conversations(run.out)}
          for name, run in runs.items()}
Markdown(markdown_table([{"strategy": name, "samples per query": run.config["num_samples"], "rows": run.rows,
                          "dropped (low agreement)": run.rejects["low_agreement"],
                          "labels unlike greedy": sum(label != labels["greedy"][q] for q, label in labels[name].items())}
                         for name, run in runs.items()]))"""
    ),
    new_code_cell(
        """voted = runs["5 votes"]
rejects = [row for _, row in iter_jsonl(voted.out + ".rejects.jsonl")]
shares = Counter(round(5 * row["teacher"]["confidence"]) for row in read_conversations(voted.out))
shares.update(max(row["votes"].values()) for row in rejects if row["reason"] == "low_agreement")
fig = Figure(figsize=(6, 3), layout="constrained")
ax = fig.subplots()
ax.bar([f"{k}/5" for k in range(1, 6)], [shares[k] for k in range(1, 6)])
ax.axvline(2.5, color="red", linestyle="--", label="min_agreement 0.8")
ax.set(xlabel="votes for the winning label", ylabel="queries", title=f"{teacher_model}: agreement over 5 samples")
ax.legend()
helpers.course.save(fig, "02_votes.png", service)
fig"""
    ),
    new_markdown_cell(
        """## 6. The rejects

Nothing is dropped silently. A query without a row is in the rejects file with its reason:
`unparsed` (no answer named a label), `low_agreement` (the votes split), `error` or
`retries_exhausted` (the request failed). The main run above had none or almost none; the
voting run's rejects show what a split teacher looks like. Queries like these are worth
reading: with an LLM teacher they are often genuinely ambiguous, and sometimes they show a
gap in the prompt. Offline many are plain sentences split between their language and `ot`:
the stand-in's doubts about neighbouring languages, added up into `ot` (section 5)."""
    ),
    new_code_cell(
        """print("rejects of the main run:", {reason: n for reason, n in summary.rejects.items() if n} or "none")
Markdown(markdown_table([{"query": row["query"], "reason": row["reason"],
                          "votes": " ".join(f"{label}:{n}" for label, n in row.get("votes", {}).items())}
                         for row in rejects], max_rows=8, max_chars=70))"""
    ),
    new_markdown_cell(
        """## 7. The exported file

`distill.jsonl` is in the chat format that tinker-cookbook's conversation loader reads: a
user turn with the query and an assistant turn with the label, **and no system prompt**.
That absence is the whole point of distillation. The `teacher` object (raw answer, votes,
confidence) rides along for analysis; training ignores it. One line as it is stored:"""
    ),
    new_code_cell(
        """rows = read_conversations(path)
print(path.read_text(encoding="utf-8").splitlines()[0])
Markdown(markdown_table([{"user": row["messages"][0]["content"], "assistant": row["messages"][-1]["content"],
                          "confidence": row["teacher"]["confidence"]} for row in rows], max_rows=6, max_chars=70))"""
    ),
    new_markdown_cell(
        """Next, `03_train_student.ipynb` trains the student on these rows, without the prompt.

## Exercises

**1. Is the pool like the queries the student will meet?** The student learns the mix of
queries the pool shows it. Compare the pool's kinds with the dev set's, whose mix is the
test set's of notebook 04, the queries the student is judged on. Which kinds does the pool
under-represent?

<details><summary>What to look for</summary>

Romanised text and inputs with no language at all are several times rarer in the pool than
in the dev set. That is a candidate explanation for student errors on those kinds (the
exercise of notebook 04 measures the student by kind), but only a candidate: in the course's own
offline measurements, neither 1,100 more written romanised and code-switched queries nor
weighting each kind to the dev set's share moved the tiny student (README, Benchmarks).
Measure before you write data.
</details>"""
    ),
    new_code_cell(
        """dev_kinds = Counter(row["kind"] for row in read_gold(helpers.course.DATA / "dev_gold.jsonl"))
pool_share = {kind: n / len(pool) for kind, n in kinds.items()}
dev_share = {kind: n / sum(dev_kinds.values()) for kind, n in dev_kinds.items()}
Markdown(markdown_table([{"kind": kind, "pool": f"{pool_share.get(kind, 0):.1%}", "dev set": f"{dev_share.get(kind, 0):.1%}",
                          "dev / pool": round(dev_share.get(kind, 0) / pool_share[kind], 1) if kind in pool_share else "not in pool"}
                         for kind in sorted(dev_share, key=lambda k: -dev_share[k] / pool_share.get(k, 1e-9))], max_rows=None))"""
    ),
    new_markdown_cell(
        """**2. Label queries of your own.** The way to fill a gap in the pool is to write queries
of the missing kind and have the teacher label them, exactly as it labelled the pool. The
cell starts you off with romanised text in five languages; put in your own. The teacher
decides the labels: your job is only to write realistic queries. The cell writes them to
`my_queries.jsonl` in this run's folder, in the same format as `distill.jsonl`. To train on
them, add a line after the one that reads the rows in notebook 03,
`rows += read_conversations(helpers.course.run_dir(service) / "my_queries.jsonl")`, and the
same with `distill +=` in notebook 04's baseline cell, so that the baseline learns from the
same labels as the student it is compared with. Any change to the data makes notebook 03 train a new student from
step 1, replacing the one in `student/`: offline a minute, on Tinker another paid run.

<details><summary>What to look for</summary>

Under the policy, romanised Hindi, Urdu, Arabic, Russian or Greek is `ot`: a student that
answers `hi` for "Aaj mausam bahut accha hai" did not learn the rule. Check that the
teacher's answers are what the policy says before you train on them; a wrong label here
becomes a wrong student later.
</details>"""
    ),
    new_code_cell(
        """my_queries = [
    "Kal shaam ko hum sab milkar khana khayenge",  # Hindi, romanised
    "Aap ka bohat shukriya, phir milenge",  # Urdu, romanised
    "Ya habibi, kifak? Ana mabsout ktir",  # Arabic, romanised
    "Privet, kak dela? Davno ne videlis",  # Russian, romanised
    "Kalimera, ti kaneis simera?",  # Greek, romanised
]
mine = generate(teacher, my_queries, workdir / "my_queries.jsonl", overwrite=True, progress=False)
Markdown(markdown_table([{"query": row["messages"][0]["content"], "teacher's label": row["messages"][-1]["content"],
                          "teacher's first line": row["teacher"]["raw"].strip().splitlines()[0]}
                         for row in read_conversations(mine.out)], max_chars=70))"""
    ),
]


def build(cells: list, prefix: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{prefix}-{i:02d}"  # stable ids keep diffs small when the script is re-run
    return nb


if __name__ == "__main__":
    for name, cells, prefix in (("01_teacher_prompt.ipynb", TEACHER, "teacher"),
                                ("02_generate_data.ipynb", GENERATE, "generate")):
        nb = build(cells, prefix)
        nbformat.validate(nb)
        nbformat.write(nb, NOTEBOOKS / name)
        print(f"wrote {NOTEBOOKS / name} ({len(nb.cells)} cells)")
