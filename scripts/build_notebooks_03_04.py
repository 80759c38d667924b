"""Write notebooks/03_train_student.ipynb and notebooks/04_evaluate.ipynb (stored without outputs).

Edit the cells here and run ``.venv/bin/python scripts/build_notebooks_03_04.py``; the
notebooks are generated so that their text stays reviewable as plain Python, and cell ids
are stable so that re-running the script changes only what was edited.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

TRAIN = [
    new_markdown_cell(
        """# 03 · Training the student

In notebook 02 the teacher labelled a pool of queries while reading a long prompt (about
3,000 tokens with the offline tokenizer; an LLM's tokenizer counts fewer). Now a *student*
learns those labels **without** the prompt: each training example is only the query and the
teacher's answer. If the student learns well, it behaves as if it had read the prompt, and
no query ever pays for the prompt again.

This notebook looks at one training example token by token, checks that training and
sampling see exactly the same tokens, chooses the training settings, trains with live loss
and validation curves, and leaves a checkpoint for `04_evaluate`.

Offline, a tiny model starts from random weights and trains on this CPU, on a quick version
of the data (about 1,200 queries, 4 epochs in batches of 16): one to two minutes. With a Tinker key the same
cells fine-tune a LoRA adapter on an LLM, with the recipe's settings (on the quick sample for
one epoch when `PD_QUICK=1` is set)."""
    ),
    new_code_cell(
        """%matplotlib inline
import json

from IPython.display import Markdown

import helpers
import helpers.course
from helpers.dataio import read_conversations
from helpers.evaluate import default_models, markdown_table, predict
from helpers.plots import LiveLossPlot, plot_history, show_example_tokens
from helpers.prompt import student_messages
from helpers.render import RenderMismatchError, prompt_tokens, render_example
from helpers.train import TrainConfig, train

service = helpers.connect()
print(helpers.course.backend_note(service))"""
    ),
    new_markdown_cell(
        """## 1. The training data

The teacher's answers from notebook 02, in the chat format every fine-tuning tool reads:
a user turn with the query, an assistant turn with the label, and no system prompt. If you
have not run notebook 02, the cell runs its generation first and says what it asks: offline,
the quick sample (about 30 seconds); on Tinker, the whole 14,660-query pool with the long
prompt, or 1,200 queries with `PD_QUICK=1`. With a key, run notebook 02 first: it prints
that count before anything is asked, and stops where you stop it."""
    ),
    new_code_cell(
        """missing = helpers.course.distillation_estimate(service)  # asks nothing; 0 requests when notebook 02 ran
if missing.requests:
    print(f"notebook 02's data is missing; asking for it now: {missing}")
rows = read_conversations(helpers.course.ensure_distillation_data(service))
print(f"{len(rows)} conversations; the first one:")
rows[0]["messages"]"""
    ),
    new_markdown_cell(
        """## 2. Anatomy of one training example

A model reads tokens, so the conversation is first rendered with the model's own chat
template, the same one used when we later *ask* the student. Every token then gets a
weight in the loss:

- **weight 0** (grey): the chat markup and the query. The student reads them but is not
  trained to write them: the answer is what it must learn. (That is the recipe; section 4
  shows the one change the tiny local model needs.)
- **weight 1** (green): the answer and the end-of-turn token after it. The end-of-turn
  token matters: it teaches the student to *stop* after the label instead of rambling on.

Hover over a token to see its id. Offline the tokenizer is the tiny model's byte-level one,
so words break into smaller pieces than an LLM's tokenizer would make."""
    ),
    new_code_cell(
        """tokenizer = service.create_sampling_client(base_model=default_models(service.backend)["base"]).result().get_tokenizer()
example = render_example(tokenizer, rows[0]["messages"])
show_example_tokens(tokenizer, example)"""
    ),
    new_markdown_cell(
        """What the training call receives is a `tinker.types.Datum`. Training predicts the *next*
token, so the tokens are shifted by one: the model reads `tokens[:-1]` and is scored on
`tokens[1:]`, each target with the weight of the token it predicts. Of the whole example,
only the answer and its end-of-turn token count (in the recipe; offline, section 4 adds the
query's tokens at a smaller weight):"""
    ),
    new_code_cell(
        """datum = example.to_datum()
targets = datum.loss_fn_inputs["target_tokens"].to_numpy()
weights = datum.loss_fn_inputs["weights"].to_numpy()
print(f"{datum.model_input.length} input tokens, {len(targets)} targets, "
      f"{int(weights.sum())} with weight 1: {tokenizer.decode(targets[weights > 0].tolist())!r}")"""
    ),
    new_markdown_cell(
        """## 3. The prefix check

When we ask the student a question later, it receives the *generation prompt*: the chat
template applied to the user turn, ending where the assistant's answer should begin. In
training, it saw the whole conversation rendered in one piece. The two must agree token for
token: the generation prompt must be exactly the beginning of the training tokens. If they
differ (an extra space, a default system prompt, an empty thinking block the template adds
in one case and not the other), the student learns a format it is never shown at sampling
time, and distillation fails **without any error**, only with poor answers.

`render_example` renders both and raises `RenderMismatchError` when they differ. Below it
runs on every row, and the prompt part is compared once more with what the evaluation code
sends to the student (`student_messages`: the query alone)."""
    ),
    new_code_cell(
        """checked = 0
for row in rows:
    rendered = render_example(tokenizer, row["messages"])  # raises RenderMismatchError on a mismatch
    query = row["messages"][0]["content"]
    checked += rendered.prompt_tokens == prompt_tokens(tokenizer, student_messages(query))
print(f"prefix check: {checked} of {len(rows)} examples start with exactly the tokens the sampler sends")
assert checked == len(rows)"""
    ),
    new_markdown_cell(
        """## 4. The training settings

On Tinker the course follows the recipe: a LoRA adapter of rank 32 on the base model. LoRA
keeps the model's own weights frozen and trains, beside each weight matrix it adapts, two thin
matrices whose product is added to it; the rank is their inner width, so it sets how many
numbers the adapter can learn, far fewer than the model holds. The other settings: a
learning rate 1e-4 decaying linearly to zero, 4 epochs, batches of 128 examples. The local
tiny model is different: it starts from random weights, so *all* its weights train (the
rank is recorded but unused), and it needs a much larger learning rate and smaller batches.
It also knows no language yet, which a pretrained LLM does. So locally the prompt side (the
query's tokens and the chat markup around them) gets weight 0.5 instead of 0
(`prompt_weight`): predicting the query's next token teaches the student the languages. In
our offline measurements on an earlier, smaller pool it lifted test accuracy from 0.89 to
0.94 at the same cost. On Tinker the recipe's 0 stays. Offline, this notebook trains on a
quick sample of the pool, in batches of 16 so that it still makes a few hundred steps
(`PD_QUICK=0` trains on the whole pool, as `make run`'s pipeline, `python -m helpers run`, does).

We also validate about twice per epoch (`eval_every`, in steps; 0 means only at the end) on
the 5% of the data held out: the loss on the held-out answers, and the accuracy of the
student's own greedy answers to those queries."""
    ),
    new_code_cell(
        """# TrainConfig.for_backend(service.backend, quick=...) with eval_every about twice per epoch;
# notebook 04 trains with the same settings if it runs first, so neither trains the student twice
config = helpers.course.student_config(service, rows)

names = ["base_model", "rank", "learning_rate", "lr_schedule", "warmup_steps", "epochs", "batch_size", "prompt_weight",
         "eval_every"]
recipe, local = TrainConfig.for_backend("tinker"), TrainConfig.for_backend("local")
Markdown(markdown_table([{"setting": n, "Tinker recipe": getattr(recipe, n), "local default": getattr(local, n),
                          "this run": getattr(config, n)} for n in names], max_rows=None))"""
    ),
    new_markdown_cell(
        """## 5. Training, with live curves

`train` drives the training client through Tinker's calls (`forward_backward`, `optim_step`,
`save_state`), submitting the next batch before awaiting the previous one. The picture below
the cell redraws every few steps: the training loss per answer token, and at each validation
the held-out loss and accuracy.

The run writes to `student/` in the backend's work folder, beside notebook 02's
`distill.jsonl`: checkpoints every 100 steps and at the end, `progress.json` (the run's
record) and `checkpoint.json`. Run the cell again with the same data and settings and it
resumes where it stopped, or, as here when it already finished, only reloads the result.
With other settings it says so and trains a new student from step 1, which replaces this one
in `student/` (on Tinker, a second paid run).
Offline, the weights are stored in `student/weights` so that notebook 04 finds them; on
Tinker they stay on Tinker's servers."""
    ),
    new_code_cell(
        """student_dir = helpers.course.run_dir(service) / "student"
trainer = helpers.connect("local", store=student_dir / "weights") if helpers.course.is_offline(service) else service
live = LiveLossPlot(every=5, offline=helpers.course.is_offline(service))
result = train(trainer, rows, config, out_dir=student_dir, callbacks=[live])
print(result.describe())"""
    ),
    new_markdown_cell(
        """## 6. Reading the curves

The same curves again, drawn from the run's record, so they also appear when the cell above
only reloaded a finished run. Grey is the loss of each step, blue its moving average, red
the held-out loss; on the right, the share of held-out queries the student answers exactly
like the teacher, without the prompt.

Both losses should fall together; a held-out loss that turns back up while the training loss
keeps falling would mean the student memorises instead of learning the policy. Offline these
are the tiny local model's numbers after a quick 4-epoch run, not an LLM's. The held-out
accuracy is measured on a small sample, so it moves a few points up or down from one check
to the next; the loss curves are the steadier guide. The quick student stays well behind the full one (the
full local run, `python -m helpers run --out DIR`, trains on the whole pool, about twelve
times the data). Notebook 04 measures the student on the gold test set."""
    ),
    new_code_cell(
        """fig = plot_history(result.history, result.validation, title=f"Student training ({config.base_model})")
helpers.course.save(fig, "03_training.png", service)
fig"""
    ),
    new_markdown_cell(
        """## 7. The checkpoint

`checkpoint.json` is what the next notebook (and `python -m helpers evaluate --data
data/test_gold.jsonl --predictor student:DIR`) reads: the base model, `sampler_path` (the
weights to sample from), `state_path` (weights and optimiser state, to continue training),
the number of steps and the last validation. Offline the paths start with `local://`, on
Tinker with `tinker://`.
The settings are in it too (left out below for brevity)."""
    ),
    new_code_cell(
        """info = json.loads((student_dir / "checkpoint.json").read_text())
print(json.dumps({key: value for key, value in info.items() if key != "config"}, indent=1))"""
    ),
    new_markdown_cell(
        """A first look at the student through the checkpoint, the way notebook 04 loads it: three
queries, asked *without* the prompt, beside the language each was written in. Offline this
quick run's tiny student gets roughly three test queries in four right (notebook 04 measures
it; the figure moves by several points with the sample and the machine), and it may well
miss one or more of these three: it learned from 1,200 labels in a minute, from random
weights. On Tinker the student starts from an LLM that already reads these languages."""
    ),
    new_code_cell(
        """queries = {"Wo ist der nächste Bahnhof?": "de", "¿Cuánto cuesta este libro?": "es", "Bu akşam sinemaya gidelim mi?": "tr"}
answers = predict(f"student:{student_dir}", list(queries), service, progress=False)
Markdown(markdown_table([{"query": q, "written in": lang, "student (no prompt)": a.raw}
                         for (q, lang), a in zip(queries.items(), answers, strict=True)]))"""
    ),
    new_markdown_cell(
        """Next, `04_evaluate.ipynb` puts teacher, base model and student side by side on the gold
test set, and counts what the student saves on every query.

## Exercises

**1. Break the prefix check on purpose.** Section 3 claims that a template which renders the
generation prompt differently from the training text is caught before any training. See it
happen: the wrapper below behaves like the real tokenizer, except that its generation prompt
ends with one extra space, the kind of slip a hand-edited chat template makes. Then try your
own slips: drop the newline after `assistant`, or add a system prompt in one case only.

<details><summary>What to look for</summary>

`render_example` stops with `RenderMismatchError` and shows where the two renderings part,
token by token. Without the check, training would go ahead: the student would learn to
answer after `assistant\\n` while at sampling time it is asked after `assistant\\n `, and
its answers would be poor for no visible reason.
</details>"""
    ),
    new_code_cell(
        """class ExtraSpace:
    \"\"\"The tokenizer, but its generation prompt ends with one space more than its training text.\"\"\"

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __getattr__(self, name):  # everything else as the real tokenizer
        return getattr(self.tokenizer, name)

    def apply_chat_template(self, messages, add_generation_prompt=False, **kwargs):
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, **kwargs)
        return text + " " if add_generation_prompt else text


try:
    render_example(ExtraSpace(tokenizer), rows[0]["messages"])
    print("no mismatch found")
except RenderMismatchError as error:
    print(f"caught before training: {error}")"""
    ),
]

EVALUATE = [
    new_markdown_cell(
        """# 04 · Evaluating the student

The student learned the teacher's answers without ever seeing the prompt. How much of the
prompt did it absorb, and what does it save? This notebook asks four predictors about the
same 615 hand-labelled queries of `data/test_gold.jsonl`, which played no part in writing
the prompt or training:

| predictor | model | prompt |
|---|---|---|
| teacher | the teacher model | the long prompt |
| base | the student's starting model, untrained for the task | none |
| student | the base model after distillation (notebook 03) | none |
| baseline | character n-grams and logistic regression, trained on the same teacher labels | none |

The first three are the language models and get confusion matrices; the baseline comes in
section 4, as the "do you need an LLM student at all?" check. Offline, the teacher is the
rule-based stand-in and the student the tiny local model trained on this CPU, so the numbers
below measure the recipe, not LLMs. If notebook 03 has not run,
the first cells build its data and student (offline, quickly: one to two minutes; on Tinker,
the full data and a full LoRA run)."""
    ),
    new_code_cell(
        """%matplotlib inline
from IPython.display import Markdown

import helpers
import helpers.course
from helpers.baseline import save_baseline, train_baseline
from helpers.dataio import read_conversations, read_gold
from helpers.evaluate import (
    PRICES,
    agreement,
    agreement_by,
    compute_metrics,
    cost_table,
    default_models,
    error_table,
    markdown_table,
    measure_latency,
    predict,
    prompt_tokens_per_query,
    sampling_client_for,
)
from helpers.plots import plot_confusions, plot_cost
from helpers.widgets import StudentTryout

service = helpers.connect()
print(helpers.course.backend_note(service))"""
    ),
    new_code_cell(
        """student_dir = helpers.course.ensure_student(service)  # notebook 03's student, or one trained now (offline quick; on Tinker a full paid run)
gold = read_gold(helpers.course.DATA / "test_gold.jsonl")
texts, truth = [row["text"] for row in gold], [row["label"] for row in gold]
print(f"{len(gold)} gold queries; the student is in {student_dir}")
predictions, metrics = {}, {}  # answers and scores per predictor, filled section by section"""
    ),
    new_markdown_cell(
        """## 1. Everyone answers

`predict` sends each query to a model, greedily: the teacher with its prompt, the base model
and the student with the query alone. Every answer goes through the one label parser of the
course. An answer that names no label is kept as **unparsed** and counts as wrong: dropping
it would flatter exactly the models that fail most. The interval is a bootstrap 95% interval
of the accuracy (Wilson's score interval when every answer is right, or every one wrong,
where each resample would be too). Offline the teacher's bar waits about ten seconds at the start while the
stand-in's `lingua` detector loads its language models."""
    ),
    new_code_cell(
        """specs = {"teacher": "teacher", "base": "base", "student": f"student:{student_dir}"}
for name, spec in specs.items():
    predictions[name] = predict(spec, texts, service)
    metrics[name] = compute_metrics(truth, predictions[name])
Markdown(markdown_table([{"predictor": name, "accuracy": m["accuracy"],
                          "95% interval": "{:.3f} to {:.3f}".format(*m["accuracy_ci"]),
                          "macro-F1": m["macro_f1"], "unparsed": m["unparsed"]} for name, m in metrics.items() if name in specs]))"""
    ),
    new_markdown_cell(
        """**The base model cannot do the task, and that is the point.** Without the prompt it has
no idea that we want one of 13 codes, nor what our policy says about code, URLs, romanised
or mixed text. Offline the base is a tiny model with random weights, so its answers are
noise, and all or nearly all of them unparsed. On Tinker it is a capable LLM, but without the prompt it
answers in its own words and by its own rules. Everything the student does better than the
base, it learned from the teacher's answers. A few raw answers:"""
    ),
    new_code_cell(
        """shown = range(0, len(texts), 150)
Markdown(markdown_table([{"query": texts[i], "gold": truth[i], **{name: predictions[name][i].raw.strip() or "(blank)" for name in specs}}
                         for i in shown], max_chars=60))"""
    ),
    new_markdown_cell(
        """## 2. Confusion matrices

One matrix per predictor: rows are the true labels, columns the predicted ones, and the last
column, after the line, counts unparsed answers. A perfect predictor fills only the
diagonal. All panels share one colour scale, so the same shade means the same number of
queries in every panel. The first figure shows counts; the second divides each row by its
total, so every row reads as the share of that label's queries (the diagonal is recall),
which makes rare labels as visible as common ones."""
    ),
    new_code_cell(
        """fig = plot_confusions({name: metrics[name] for name in specs})
helpers.course.save(fig, "04_confusion.png", service)
fig"""
    ),
    new_code_cell(
        """fig = plot_confusions({name: metrics[name] for name in specs}, normalize=True)
helpers.course.save(fig, "04_confusion_normalized.png", service)
fig"""
    ),
    new_markdown_cell(
        """## 3. Per label

Precision: of the queries the student called `xx`, the share that really are `xx`.
Recall: of the real `xx` queries, the share the student found. F1 is their harmonic mean;
support is the number of gold queries with the label. The teacher's F1 is alongside: where
the teacher is wrong the same way every time, the student, which learned from it, copies the
mistake. (Random slips of a teacher can average out in training; its habits cannot.)"""
    ),
    new_code_cell(
        """Markdown(markdown_table([{"label": label, **scores, "teacher F1": metrics["teacher"]["per_label"][label]["f1"]}
                         for label, scores in metrics["student"]["per_label"].items()], max_rows=None))"""
    ),
    new_markdown_cell(
        """## 4. A classic baseline

Do we need an LLM student at all? The honest comparison is a plain text classifier trained
on the *same* teacher labels: TF-IDF over character n-grams and logistic regression. It
trains in seconds. It can only learn the teacher's policy as far as the policy shows in
characters; a rule like "romanised Hindi is `ot`" it has to guess from examples.

Offline, do not be surprised if the baseline beats the quick student: a tiny model trained
for a minute or two from random weights knows nothing about languages to begin with. On
Tinker the student starts from an LLM that already reads every one of these languages."""
    ),
    new_code_cell(
        """distill = read_conversations(helpers.course.ensure_distillation_data(service))
baseline = train_baseline([r["messages"][0]["content"] for r in distill], [r["messages"][-1]["content"] for r in distill])
baseline_dir = save_baseline(baseline, helpers.course.run_dir(service) / "baseline", examples=len(distill),
                             backend=service.backend, teacher_model=default_models(service.backend)["teacher"])
predictions["baseline"] = predict(f"baseline:{baseline_dir}", texts)
metrics["baseline"] = compute_metrics(truth, predictions["baseline"])
print(f"baseline accuracy {metrics['baseline']['accuracy']:.3f}, student {metrics['student']['accuracy']:.3f} "
      f"(same {len(distill)} teacher labels)")"""
    ),
    new_markdown_cell(
        """## 5. Agreement with the teacher

Distillation trains the student to copy the teacher, so the most direct measure is how often
they give the same answer. Cohen's kappa discounts the agreement two predictors would reach
by chance given how often each uses each label: 1 is perfect, 0 is chance."""
    ),
    new_code_cell(
        """Markdown(markdown_table([{"compared with the teacher": name, **agreement(predictions[name], predictions["teacher"])}
                         for name in ("base", "student", "baseline")]))"""
    ),
    new_markdown_cell(
        """## 6. Error analysis

The queries where the teacher, the student or the baseline is wrong. Read the rows where only
the student is wrong (it failed to learn something the teacher knew), and the rows where the
teacher is wrong too (the student faithfully copied a mistake: fix those in the prompt, not
in training)."""
    ),
    new_code_cell(
        """errors = error_table(texts, truth, {name: predictions[name] for name in ("teacher", "student", "baseline")})
print(f"{len(errors)} of {len(texts)} queries have at least one wrong answer; the first 12:")
Markdown(markdown_table(errors, max_rows=12, max_chars=60))"""
    ),
    new_markdown_cell(
        """## 7. What the student saves

Every query to the teacher carries the whole prompt; a query to the student carries only
itself and the chat markup. Tokens are counted with each model's own tokenizer and chat
template (offline the tiny model's byte-level tokenizer, which counts more tokens for the same
text than an LLM's would). The cell first prints the whole account: the teacher also
*writes* a line of reasoning before its label (notebook 02's summary counts those tokens),
where the student writes the bare label, and written tokens usually cost more than read ones;
and distilling was paid for once, up front: the teacher labelling the pool (notebook 02) and
the training (notebook 03). Divided by what each query saves, that one-off cost gives the
number of queries after which the student has paid for itself. The picture below it compares
prompt tokens only, so the dollars under its bars are the prompts' share of the printed ones. The prices are **example** numbers (read, written and trained tokens): put your
provider's into `prices` and re-run the cell.

Latency is measured one query at a time. Offline the teacher is the rule-based stand-in, so
its time says nothing about an LLM reading the long prompt; the student's is a real model's on
this CPU."""
    ),
    new_code_cell(
        """teacher_client = sampling_client_for("teacher", service)
student_client = sampling_client_for(f"student:{student_dir}", service)
prices = dict(PRICES)  # EXAMPLE prices, USD per million tokens (teacher/student prompt, sampled, train): edit them
cost = cost_table(prompt_tokens_per_query(teacher_client.get_tokenizer(), texts, with_prompt=True),
                  prompt_tokens_per_query(student_client.get_tokenizer(), texts, with_prompt=False), prices)
print(helpers.course.describe_payback(helpers.course.distillation_payback(service, cost, prices), service))
fig = plot_cost(cost)
helpers.course.save(fig, "04_cost.png", service)
fig"""
    ),
    new_code_cell(
        """latency = {"teacher (with prompt)": measure_latency(teacher_client, None, texts[:20], with_prompt=True),
           "student (no prompt)": measure_latency(student_client, None, texts[:20], with_prompt=False)}
Markdown(markdown_table([{"predictor": name, "ms per query": 1000 * seconds} for name, seconds in latency.items()]))"""
    ),
    new_markdown_cell(
        """## 8. Try the student

Type a text in the box and press Enter: the student answers without the prompt, the teacher with it. Try the
hard cases of the policy: a line of code, a URL, a number, romanised Hindi, two languages in
one sentence. Above the widget, one question asked from code, so that an answer also shows
when the notebook runs without a browser."""
    ),
    new_code_cell(
        """tryout = StudentTryout(student_client, teacher_client)
print(tryout.ask("Mujhe yeh gaana bahut pasand hai"))
tryout.widget()"""
    ),
    new_markdown_cell(
        """## Exercises

**Where did the student learn least?** Overall agreement hides where the student parts
from the teacher. Split it by the `kind` of each gold query. Which kinds does the student
copy worst, and is the baseline weak in the same places? Compare with the pool's mix of
kinds (exercise 1 of notebook 02).

<details><summary>What to look for</summary>

Offline, this notebook's quick student (the tiny model, a minute on 1,200 queries) trails
the stand-in teacher in every kind, and the baseline beats it in most. The full offline
student of `make run` (the whole pool, two and a half to four and a half minutes by the machine) copies natural sentences, noise
and inputs without language almost always (fewer than 1 in 100 disagree, over five seeds);
its disagreements are in mixed-language text (about 1 in 6), very short inputs (1 in 11),
romanised text, other languages and code (1 in 12 to 1 in 17). Short inputs are hard to
learn from examples: the teacher labels two-word phrases from word lists ("Guten Morgen" is
German, two unknown words are `ot`), and a phrase the pool never showed is a guess for the
student. On Tinker, with an LLM student that already knows the languages, expect another
shape.
</details>"""
    ),
    new_code_cell(
        """kinds = [row["kind"] for row in gold]
by_kind = {name: agreement_by(kinds, predictions[name], predictions["teacher"]) for name in ("student", "baseline")}
table = [{"kind": kind, "queries": scores["n"], "student agrees with the teacher": scores["agreement"],
          "baseline agrees with the teacher": by_kind["baseline"][kind]["agreement"]} for kind, scores in by_kind["student"].items()]
Markdown(markdown_table(sorted(table, key=lambda row: row["student agrees with the teacher"]), max_rows=None))"""
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
    for name, cells, prefix in (("03_train_student", TRAIN, "train"), ("04_evaluate", EVALUATE, "evaluate")):
        nb = build(cells, prefix)
        nbformat.validate(nb)
        out = NOTEBOOKS / f"{name}.ipynb"
        nbformat.write(nb, out)
        print(f"wrote {out} ({len(nb.cells)} cells)")
