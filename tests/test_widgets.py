"""The notebooks' playgrounds, driven headless: each callback changes what it should.

Notebook 01 wires :class:`helpers.widgets.TeacherPlayground` to a text box, rule
check-boxes and a button; notebook 04 wires :class:`helpers.widgets.StudentTryout`
to a text box. Here the same methods are called without a browser, offline: the
teacher is the rule-based stand-in, the student an untrained tiny local model.
"""

from __future__ import annotations

import ipywidgets as w
import pytest

from helpers import connect
from helpers.course import DATA
from helpers.dataio import read_gold
from helpers.prompt import DEFAULT_PROMPT, RULE_NAMES
from helpers.widgets import StudentTryout, TeacherPlayground

CODE = "for item in items:\n    print(item.name)"  # no comment, no string: `ot`, unless the code rule is off


@pytest.fixture(scope="module")
def service():
    return connect("local")


@pytest.fixture(scope="module")
def playground(service):
    return TeacherPlayground(service)


@pytest.fixture(autouse=True)
def all_rules_on(playground):
    playground.set_disabled([])
    yield
    playground.set_disabled([])


def _checkboxes(box: w.Widget) -> list[w.Checkbox]:
    found = [box] if isinstance(box, w.Checkbox) else []
    for child in getattr(box, "children", ()):
        found += _checkboxes(child)
    return found


@pytest.mark.parametrize(("text", "label"), [
    ("Wie spät ist es heute in Berlin?", "de"),
    ("¿Dónde está la estación de tren más cercana?", "es"),
    (CODE, "ot"),
    ("Привет, как дела у тебя сегодня?", "ru"),
])
def test_classify_answers_with_the_full_prompt(playground, text, label):
    result = playground.classify(text)
    assert result["text"] == text
    assert result["label"] == label
    assert result["raw"].rstrip().endswith(f"Final Answer: {label}")
    assert result["raw"].startswith("Rule ")  # the stand-in names the rule that decided


def test_switching_the_code_rule_off_changes_prompt_and_answer(playground):
    assert playground.prompt == DEFAULT_PROMPT
    prompt = playground.set_disabled(["code"])
    assert prompt == playground.prompt and playground.disabled == {"code"}
    assert "[rule: code]" not in prompt and "[rule: latin]" in prompt
    assert len(prompt) < len(DEFAULT_PROMPT)
    assert playground.classify(CODE)["label"] != "ot"  # the stand-in now reads identifiers as words
    playground.set_disabled([])
    assert playground.prompt == DEFAULT_PROMPT and playground.classify(CODE)["label"] == "ot"


def test_unknown_rule_names_are_refused(playground):
    with pytest.raises(KeyError, match="unknown rule"):
        playground.set_disabled(["no-such-rule"])
    assert playground.disabled == set()


def test_measure_gives_dev_accuracy_and_drops_without_the_latin_rule(playground):
    dev = read_gold(DATA / "dev_gold.jsonl")
    rows = [r for r in dev if r["kind"] == "other"][:10] + [r for r in dev if r["kind"] != "other"][:20]
    full = playground.measure(rows)
    assert 0.85 <= full <= 1.0
    playground.set_disabled(["latin"])  # other Latin-script languages get forced into a label
    assert playground.measure(rows) < full


def test_widget_checkbox_toggles_rules_and_text_box_updates_answer(playground):
    box = playground.widget(dev_rows=read_gold(DATA / "dev_gold.jsonl")[:10])
    assert isinstance(box, w.VBox)
    text, answer = box.children[0], box.children[1]
    assert text.continuous_update is False  # one question per Enter, not per keystroke (paid on Tinker)
    boxes = _checkboxes(box)
    assert [b.description for b in boxes] == list(RULE_NAMES) and all(b.value for b in boxes)

    text.value = CODE
    assert "ot" in answer.value
    code_box = next(b for b in boxes if b.description == "code")
    code_box.value = False  # what a click on the check-box does
    assert playground.disabled == {"code"} and "[rule: code]" not in playground.prompt
    assert "<b>ot" not in answer.value  # the answer was recomputed under the new prompt
    code_box.value = True
    assert playground.disabled == set() and playground.prompt == DEFAULT_PROMPT

    button, score = box.children[3].children
    button.click()
    assert "dev accuracy" in score.value


def test_without_a_dev_set_the_widget_says_so_and_measure_refuses_no_rows(playground):
    button, score = playground.widget().children[3].children
    assert button.disabled and "widget(dev_rows=...)" in score.value
    with pytest.raises(ValueError, match="measure: no gold rows to measure on"):
        playground.measure([])


def test_a_second_widget_shows_the_rules_as_they_are(playground):
    """Run the cell again after switching a rule off: the new boxes show it off, as the prompt is."""
    playground.widget()
    next(b for b in _checkboxes(playground.widget()) if b.description == "code").value = False
    boxes = {b.description: b.value for b in _checkboxes(playground.widget())}
    assert playground.disabled == {"code"} and boxes == {name: name != "code" for name in RULE_NAMES}


def test_re_measure_shows_its_error_and_measures_each_prompt_once(playground, monkeypatch):
    """A failed pass shows its reason in the widget, and the button works again; a prompt already
    measured is not measured again (greedy answers: on Tinker a second pass would be paid twice)."""
    box = playground.widget(dev_rows=read_gold(DATA / "dev_gold.jsonl")[:5])
    button, score = box.children[3].children
    passes = []

    def failing(rows):
        passes.append(len(rows))
        raise ConnectionError("the server went away")

    monkeypatch.setattr(playground, "measure", failing)
    button.click()
    assert score.value.startswith("<i>could not ask: ") and "the server went away" in score.value
    assert not button.disabled
    monkeypatch.setattr(playground, "measure", lambda rows: passes.append(len(rows)) or 0.8)
    button.click()
    button.click()
    assert passes == [5, 5] and "<b>0.800</b>" in score.value and not button.disabled


def test_student_tryout_answers_beside_the_teacher(service):
    student = service.create_sampling_client(base_model="local/tiny").result()
    teacher = service.create_sampling_client(base_model="local/policy-teacher").result()
    tryout = StudentTryout(student, teacher)
    result = tryout.ask("Bonjour, comment allez-vous aujourd'hui ?")
    assert set(result) == {"text", "student", "teacher"}
    assert result["teacher"] == "fr"
    assert set(StudentTryout(student).ask("Guten Morgen")) == {"text", "student"}  # no teacher, no column

    box = tryout.widget()
    assert box.children[0].continuous_update is False  # one question per Enter, not per keystroke
    box.children[0].value = "Καλημέρα, τι κάνεις σήμερα;"
    assert "teacher (full prompt): <b>el</b>" in box.children[1].value
    # a text the student's context cannot take: the reason shows in the widget (a callback's
    # error would go to the browser's console, where nobody sees it), and the next text works
    box.children[0].value = "Das Wetter ist heute schön. " * 200
    assert box.children[1].value.startswith("<i>could not ask: ") and "does not fit the context" in box.children[1].value
    box.children[0].value = "Καλημέρα, τι κάνεις σήμερα;!"
    assert "teacher (full prompt): <b>el</b>" in box.children[1].value
