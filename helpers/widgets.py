"""Small ipywidgets playgrounds for the notebooks, whose callbacks also work headless.

- :class:`TeacherPlayground`: type a text, see the teacher's answer (and,
  offline, which rule of the prompt decided); switch rules off and re-measure
  the teacher on the dev set.
- :class:`StudentTryout`: type a text, see what the student answers without the
  prompt, next to the teacher's answer with it.

Every widget action is a plain method (``classify``, ``set_disabled``,
``measure``, ``ask``), so tests call them without a browser and notebooks only
wire them to buttons.

Example
-------
>>> from helpers import connect
>>> pg = TeacherPlayground(connect("local"))
>>> pg.classify("Das ist ein schöner Tag")["label"]
'de'
"""

from __future__ import annotations

from .labels import LABEL_NAMES, parse_answer
from .prompt import RULE_NAMES, build_prompt, student_messages, teacher_messages
from .render import decode_answer, model_input, sampling_params


class TeacherPlayground:
    """The teacher, with a prompt whose rules can be switched off one by one."""

    def __init__(self, service, teacher_model: str | None = None):
        from .evaluate import default_models

        self.service = service
        self.model = teacher_model or default_models(service.backend)["teacher"]
        self.client = service.create_sampling_client(base_model=self.model).result()
        self.tokenizer = self.client.get_tokenizer()
        self.disabled: set[str] = set()
        self.prompt = build_prompt()

    def set_disabled(self, names) -> str:
        """Leave the rules ``names`` out of the prompt; returns the new prompt."""
        unknown = set(names) - set(RULE_NAMES)
        if unknown:
            raise KeyError(f"unknown rule(s) {sorted(unknown)}; rules are: {', '.join(RULE_NAMES)}")
        self.disabled = set(names)
        self.prompt = build_prompt(without=self.disabled)
        return self.prompt

    def classify(self, text: str) -> dict:
        """The teacher's raw answer and label for ``text`` under the current prompt."""
        params = sampling_params(self.tokenizer, 256)
        seq = self.client.sample(model_input(self.tokenizer, teacher_messages(text, self.prompt)), 1, params).result().sequences[0]
        raw = decode_answer(self.tokenizer, seq.tokens)
        return {"text": text, "label": parse_answer(raw), "raw": raw}

    def measure(self, rows) -> float:
        """Accuracy of the teacher under the current prompt on gold ``rows``."""
        from .evaluate import predict_with_client

        if not rows:
            raise ValueError("measure: no gold rows to measure on; pass rows of a gold set, e.g. read_gold(DATA / 'dev_gold.jsonl')")

        preds = predict_with_client(self.client, [r["text"] for r in rows], with_prompt=True, prompt=self.prompt, progress=False)
        return sum(p.label == r["label"] for p, r in zip(preds, rows, strict=True)) / len(rows)

    def widget(self, dev_rows=None):
        """A text box with the answer, rule check-boxes, and a re-measure button."""
        import ipywidgets as w

        text = w.Text(value="Wir sehen uns um 10:30 https://example.org", description="Text", layout=w.Layout(width="90%"),
                      continuous_update=False)  # asked on Enter, not per keystroke: on Tinker each ask is paid
        answer = w.HTML()
        # the rules as they are now: a second widget (or the cell run again) shows what is switched off
        boxes = [w.Checkbox(value=name not in self.disabled, description=name, indent=False, layout=w.Layout(width="120px")) for name in RULE_NAMES]
        score = w.HTML()
        button = w.Button(description="Re-measure on dev set")
        if not dev_rows:  # said, not a button that does nothing
            button.disabled = True
            score.value = "<i>no dev set given: widget(dev_rows=...) to measure</i>"

        def show(_=None):
            try:
                r = self.classify(text.value)
            except Exception as e:  # noqa: BLE001 (a callback's error would go to the browser's console, unseen)
                answer.value = _could_not_ask(e)
                return
            label = r["label"]
            shown = f"{label} ({LABEL_NAMES[label]})" if label else "unparsed"
            answer.value = f"<b>{shown}</b><br><pre>{_escape(r['raw'])}</pre>"

        def toggle(_=None):
            self.set_disabled([b.description for b in boxes if not b.value])
            show()

        scores: dict[frozenset, float] = {}  # greedy answers: a prompt's score does not change

        def remeasure(_=None):
            rules = frozenset(self.disabled)
            button.disabled = True  # one pass at a time: on Tinker each pass is paid
            score.value = f"measuring on {len(dev_rows)} dev queries..."
            try:
                if rules not in scores:
                    scores[rules] = self.measure(dev_rows)
                score.value = f"dev accuracy without {sorted(rules) or 'no rule'}: <b>{scores[rules]:.3f}</b>"
            except Exception as e:  # noqa: BLE001 (a callback's error would go to the log console, unseen)
                score.value = _could_not_ask(e)
            finally:
                button.disabled = False

        text.observe(show, names="value")
        for b in boxes:
            b.observe(toggle, names="value")
        button.on_click(remeasure)
        show()
        return w.VBox([text, answer, w.HBox(boxes, layout=w.Layout(flex_flow="row wrap")), w.HBox([button, score])])


class StudentTryout:
    """The student without the prompt, beside the teacher with it."""

    def __init__(self, student_client, teacher_client=None):
        self.student = student_client
        self.teacher = teacher_client
        self.tokenizer = student_client.get_tokenizer()

    def ask(self, text: str) -> dict:
        params = sampling_params(self.tokenizer, 8)
        seq = self.student.sample(model_input(self.tokenizer, student_messages(text)), 1, params).result().sequences[0]
        out = {"text": text, "student": parse_answer(decode_answer(self.tokenizer, seq.tokens))}
        if self.teacher is not None:
            tok = self.teacher.get_tokenizer()
            tseq = self.teacher.sample(model_input(tok, teacher_messages(text)), 1,
                                       sampling_params(tok, 256)).result().sequences[0]
            out["teacher"] = parse_answer(decode_answer(tok, tseq.tokens))
        return out

    def widget(self):
        import ipywidgets as w

        text = w.Text(value="Bonjour, comment ça va ?", description="Text", layout=w.Layout(width="90%"),
                      continuous_update=False)  # asked on Enter, not per keystroke
        out = w.HTML()

        def show(_=None):
            try:
                r = self.ask(text.value)
            except Exception as e:  # noqa: BLE001 (a callback's error would go to the browser's console, unseen)
                out.value = _could_not_ask(e)
                return
            out.value = f"student (no prompt): <b>{r['student'] or 'unparsed'}</b>" + (
                f" &nbsp; teacher (full prompt): <b>{r['teacher'] or 'unparsed'}</b>" if "teacher" in r else "")

        text.observe(show, names="value")
        show()
        return w.VBox([text, out])


def _could_not_ask(error: Exception) -> str:
    """An error of a widget's request, shown in the widget on one line (the API key left out)."""
    from .generate import one_line

    return f"<i>could not ask: {_escape(one_line(error))}</i>"


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
