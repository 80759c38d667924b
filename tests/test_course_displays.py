"""Tests for what notebooks 03 and 04 display: a training example's tokens, a finished run's curves, tables."""

from __future__ import annotations

import re
from html import unescape

from helpers.evaluate import markdown_table
from helpers.local.model import load_tokenizer
from helpers.plots import plot_history, show_example_tokens
from helpers.render import conversation, render_example


def _boxes(html: str) -> list[tuple[str, str]]:
    """(title, text) of every token box."""
    return [(t, unescape(x)) for t, x in re.findall(r'<span title="([^"]*)"[^>]*>(.*?)</span>', html)]


def test_tokens_are_coloured_by_weight_and_spell_the_example():
    tok = load_tokenizer()
    example = render_example(tok, conversation("Привет, 你好 café 🙂", "ot"))
    html = show_example_tokens(tok, example).data
    boxes = _boxes(html)
    assert "".join(text for _, text in boxes) == tok.decode(example.tokens).replace("\n", "\\n")
    assert "\ufffd" not in html  # characters split over byte tokens are shown whole
    assert any(" " in title.split(",")[0].removeprefix("id ") for title, _ in boxes)  # the emoji: 3 byte tokens
    trained = [text for title, text in boxes if title.endswith("weight 1")]
    assert trained == ["ot", "<|im_end|>"]  # the answer and its end of turn, nothing else
    assert f"weight 0: prompt, {len(example.prompt_tokens)} tokens" in html


def test_long_examples_are_cut():
    tok = load_tokenizer()
    example = render_example(tok, conversation("ein langer Satz " * 40, "de"))
    html = show_example_tokens(tok, example, max_tokens=20).data
    assert len(_boxes(html)) <= 20 and "more tokens" in html


def test_plot_history_draws_a_finished_run():
    history = [{"kind": "step", "step": s, "loss": 1 / s, "learning_rate": 1e-3} for s in range(1, 11)]
    validation = [{"step": 5, "val_loss": 0.3, "val_accuracy": 0.5}, {"step": 10, "val_loss": 0.2, "val_accuracy": 0.8}]
    fig = plot_history(history, validation)
    loss_ax, acc_ax = fig.axes
    assert len(loss_ax.lines) == 3  # per step, smoothed, validation
    assert list(acc_ax.lines[0].get_ydata()) == [0.5, 0.8]


def test_markdown_table_shows_html_in_queries_as_text():
    table = markdown_table([{"text": '<p class="note">a | b & c</p>', "gold": "ot"}])
    row = table.splitlines()[2]
    assert row == '| &lt;p class="note"&gt;a \\| b &amp; c&lt;/p&gt; | ot |'
