"""Pictures for the course: confusion matrices side by side, the prompt's cost, a live loss curve.

Everything here draws on a :class:`matplotlib.figure.Figure` made directly, not
through ``pyplot``'s global state: it works the same in Jupyter (return the
figure from a cell to show it), in a headless test (the Agg renderer), and in a
long notebook session (no figures pile up in ``pyplot``'s registry).

- :func:`plot_confusions`: one confusion matrix per predictor, one shared colour
  scale, drawn by scikit-learn's :class:`~sklearn.metrics.ConfusionMatrixDisplay`,
  with the extra "unparsed" column of :func:`helpers.metrics.compute_metrics`.
- :func:`plot_cost`: prompt tokens per query, teacher against student.
- :class:`LiveLossPlot`: a callback for :func:`helpers.train.train` that redraws
  one picture in place while the student trains.
- :func:`plot_history`: the same curves for a finished (or resumed) run, from its record.
- :func:`show_example_tokens`: one training example's tokens as HTML, coloured by loss weight.
- :func:`save_figure`: PNG (or any format matplotlib knows), written atomically.
- :func:`mark_offline`: the offline note on top of a figure of offline results.

Example
-------
>>> from helpers.metrics import compute_metrics
>>> m = compute_metrics(["de", "en", "ot"], ["de", "fr", None])
>>> fig = plot_confusions({"student": m})
>>> len(fig.axes)            # one matrix and the colour bar
2
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .dataio import write_with
from .labels import LABELS

OFFLINE_NOTE = "offline: stand-in teacher, tiny local student (not LLM results)"
"""What every figure of an offline run says on top (:func:`mark_offline`)."""


def mark_offline(fig: Figure, offline: bool = True) -> Figure:
    """``fig`` with :data:`OFFLINE_NOTE` on top when ``offline``, so that a picture of the stand-in
    teacher's or the tiny student's numbers says so wherever it is shown or copied.

    >>> fig = mark_offline(Figure())
    >>> fig.get_suptitle()
    'offline: stand-in teacher, tiny local student (not LLM results)'
    """
    if offline:
        fig.suptitle(OFFLINE_NOTE, fontsize=9, color="0.35")
    return fig


def _confusion(metrics: Mapping, normalize: bool) -> tuple[np.ndarray, list[str], list[str]]:
    """(matrix, row labels, column labels) of a metrics dict; rows sum to 1 when ``normalize``."""
    cm = np.asarray(metrics["confusion"], dtype=np.float64 if normalize else np.int64)
    rows = list(metrics.get("labels", LABELS))
    columns = list(metrics.get("confusion_columns", rows + ["unparsed"][: cm.shape[1] - len(rows)]))
    if cm.shape != (len(rows), len(columns)):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not match {len(rows)} labels")
    if normalize:
        totals = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    return cm, rows, columns


def plot_confusions(metrics_by_name: Mapping[str, Mapping], normalize: bool = False, *,
                    cmap: str = "Blues", panel_size: float = 5.2) -> Figure:
    """Confusion matrices of several predictors side by side, on one shared colour scale.

    Parameters
    ----------
    metrics_by_name : ``{"teacher": metrics, "student": metrics, ...}``, each from
        :func:`helpers.evaluate.compute_metrics` (or a ``metrics.json``).
    normalize : False: raw counts; True: each row divided by its total, so a cell
        is the share of a true label predicted as each column (row recall).
    cmap, panel_size : colour map and the width of one panel in inches.

    Returns
    -------
    A figure with one axis per predictor (rows = true label, columns = predicted,
    the last column "unparsed") and one colour bar shared by all of them. Empty
    cells are left blank so that the mistakes stand out.
    """
    from sklearn.metrics import ConfusionMatrixDisplay

    if not metrics_by_name:
        raise ValueError("no metrics to plot")
    if "confusion" in metrics_by_name or not all(isinstance(m, Mapping) and "confusion" in m for m in metrics_by_name.values()):
        raise ValueError("plot_confusions takes {name: metrics}, e.g. {\"student\": metrics}, each with a \"confusion\"")
    mats = {name: _confusion(m, normalize) for name, m in metrics_by_name.items()}
    vmax = max(float(cm.max()) for cm, _, _ in mats.values())
    vmax = vmax if vmax > 0 else 1.0
    k = len(mats)
    fig = Figure(figsize=(panel_size * k + 1.2, panel_size), layout="constrained")
    axes = fig.subplots(1, k, squeeze=False)[0]
    fmt = ".2f" if normalize else "d"
    image = None
    for ax, (name, (cm, rows, columns)) in zip(axes, mats.items(), strict=True):
        # ConfusionMatrixDisplay draws square matrices: pad a row for the "unparsed"
        # column's would-be true label, then hide it (no gold label is unparsed).
        square = np.zeros((len(columns), len(columns)), dtype=cm.dtype)
        square[: len(rows)] = cm
        display = ConfusionMatrixDisplay(square, display_labels=columns)
        display.plot(ax=ax, cmap=cmap, colorbar=False, values_format=fmt, xticks_rotation="vertical",
                     im_kw={"vmin": 0.0, "vmax": vmax}, text_kw={"fontsize": 7})
        for i in range(square.shape[0]):
            for j in range(square.shape[1]):
                text = display.text_[i, j]
                if i >= len(rows):
                    text.remove()
                elif square[i, j] == 0:
                    text.set_text("")
                else:  # the text colour follows the shared scale, not this panel's own
                    text.set_color("white" if square[i, j] > vmax / 2 else "black")
                    if normalize:  # percent without the sign: "100" fits a cell, "100%" does not;
                        share = 100 * square[i, j]  # a share under 1% is "<1", never a "0" in a coloured cell
                        text.set_text(f"{share:.0f}" if share >= 1 else "<1")  # (f"{0.5:.0f}" is "0")
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_yticks(range(len(rows)), rows)
        if len(columns) > len(rows):
            ax.axvline(len(rows) - 0.5, color="0.4", linewidth=1)
        metrics = metrics_by_name[name]
        title = name
        if "accuracy" in metrics:
            title += f"\naccuracy {metrics['accuracy']:.1%}, n={metrics.get('n', int(np.sum(metrics['confusion'])))}"
        if metrics.get("unparsed"):
            title += f", {metrics['unparsed']} unparsed"
        ax.set_title(title, fontsize=10)
        image = display.im_
    bar = fig.colorbar(image, ax=list(axes), shrink=0.8)
    bar.set_label("% of the true label (cells in percent)" if normalize else "queries")
    if normalize:
        bar.ax.yaxis.set_major_formatter(_percent)
    return fig


def _percent(value, _pos=None) -> str:
    return f"{value:.0%}"


def plot_cost(cost: Mapping, *, title: str | None = None) -> Figure:
    """Bar chart of prompt tokens per query, teacher (with prompt) against student (without).

    ``cost`` is a :func:`helpers.evaluate.cost_table` (it needs
    ``teacher_tokens_per_query`` and ``student_tokens_per_query``; the US dollars
    per million queries are added under the bars when present).
    """
    teacher = float(cost["teacher_tokens_per_query"])
    student = float(cost["student_tokens_per_query"])
    fig = Figure(figsize=(5.5, 4.0), layout="constrained")
    ax = fig.subplots()
    names = ["teacher\n(with prompt)", "student\n(no prompt)"]
    usd = [cost.get("teacher_usd_per_million_queries"), cost.get("student_usd_per_million_queries")]
    if all(u is not None for u in usd):
        # the prompt tokens' dollars alone: the printed account adds written tokens and the one-off cost
        names = [f"{n}\n${u:,.0f} / 1M queries' prompts" for n, u in zip(names, usd, strict=True)]
        if str(cost.get("prices_note", "")).startswith("EXAMPLE"):
            ax.set_xlabel("at EXAMPLE prices (helpers.evaluate.PRICES: edit them)", fontsize=8, color="0.35")
    bars = ax.bar(names, [teacher, student], color=["#c44e52", "#4c72b0"])
    ax.bar_label(bars, labels=[f"{teacher:,.0f}", f"{student:,.0f}"], padding=2)
    ax.set_ylabel("prompt tokens per query")
    ax.margins(y=0.15)
    if title is None and student > 0:
        title = f"The teacher sends {teacher / student:,.1f}x the student's prompt tokens"
    ax.set_title(title or "", fontsize=10)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save ``fig`` to ``path`` (format from the suffix, PNG usually), atomically; returns the path."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    return write_with(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"))


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (where a display can be updated in place)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class LiveLossPlot:
    """A training callback that keeps one loss picture up to date in a Jupyter notebook.

    Pass it to :func:`helpers.train.train` (``callbacks=[LiveLossPlot()]``). It
    records every ``{"kind": "step", "step", "loss"}`` and ``{"kind":
    "validation", "step", "val_loss", "val_accuracy"}`` it receives (a ``{"kind":
    "restart", "step"}``, sent when a run goes back to a checkpoint, drops the later
    points), and every
    ``every`` steps (and at each validation) redraws a single output in place
    (IPython's ``display_id``), so a long run does not print hundreds of
    pictures. Outside Jupyter it only records; call :meth:`figure` to draw. With
    ``offline=True`` (the run trains the tiny local student, ``helpers.course.is_offline(service)``)
    every drawing carries :data:`OFFLINE_NOTE` on top.

    >>> plot = LiveLossPlot(every=10)
    >>> for step in range(1, 21):
    ...     plot({"kind": "step", "step": step, "loss": 1 / step})
    >>> plot({"kind": "validation", "step": 20, "val_loss": 0.06, "val_accuracy": 0.9})
    >>> len(plot.steps), len(plot.validation), len(plot.figure().axes)
    (20, 1, 2)
    """

    def __init__(self, every: int = 10, title: str = "Student training", live: bool | None = None,
                 offline: bool = False):
        self.every = max(1, int(every))
        self.title = title
        self.live = _in_kernel() if live is None else live
        self.offline = offline
        self.steps: list[dict] = []
        self.validation: list[dict] = []
        self._fig: Figure | None = None
        self._handle = None

    def __call__(self, info: Mapping) -> None:
        kind = info.get("kind")
        if kind == "step":
            self.steps.append(dict(info))
            if info.get("step", len(self.steps)) % self.every == 0:
                self.update()
        elif kind == "validation":
            self.validation.append(dict(info))
            self.update()
        elif kind == "restart":  # the run went back to a checkpoint: its later steps will be redone
            self.steps = [s for s in self.steps if s["step"] <= info["step"]]
            self.validation = [v for v in self.validation if v["step"] <= info["step"]]

    def figure(self) -> Figure:
        """The picture of everything recorded so far (the same figure object each time)."""
        if self._fig is None:
            self._fig = Figure(figsize=(10, 3.6), layout="constrained")
        fig = self._fig
        fig.clear()
        mark_offline(fig, self.offline)  # after clear(), which takes the note away with the rest
        loss_ax, acc_ax = fig.subplots(1, 2, sharex=True)
        if self.steps:
            x = [s["step"] for s in self.steps]
            y = np.array([s["loss"] for s in self.steps], dtype=float)
            loss_ax.plot(x, y, color="0.75", linewidth=0.8, label="train (per step)")
            smooth = _ema(y, 0.9)
            loss_ax.plot(x, smooth, color="#4c72b0", linewidth=1.5, label="train (smoothed)")
            if np.all(y > 0):
                loss_ax.set_yscale("log")
        if self.validation:
            loss_ax.plot([v["step"] for v in self.validation], [v["val_loss"] for v in self.validation],
                         "o-", color="#c44e52", label="validation")
            acc_ax.plot([v["step"] for v in self.validation],
                        [np.nan if v["val_accuracy"] is None else v["val_accuracy"] for v in self.validation],
                        "o-", color="#55a868")
            last = self.validation[-1]
            acc_ax.set_title(f"validation accuracy {last['val_accuracy']:.1%} at step {last['step']}"
                             if last["val_accuracy"] is not None else "validation accuracy (not sampled)", fontsize=10)
        else:
            acc_ax.set_title("validation accuracy (none yet)", fontsize=10)
        loss_ax.set_xlabel("step")
        loss_ax.set_ylabel("loss per answer token")
        loss_ax.set_title(self.title, fontsize=10)
        if self.steps or self.validation:
            loss_ax.legend(fontsize=8)
        acc_ax.set_xlabel("step")
        acc_ax.set_ylim(0, 1.02)
        acc_ax.yaxis.set_major_formatter(_percent)
        return fig

    def update(self) -> None:
        """Redraw the one live output (inside Jupyter; elsewhere nothing happens)."""
        if not self.live:
            return
        from IPython.display import Image, display

        buffer = io.BytesIO()
        self.figure().savefig(buffer, format="png", dpi=90)
        image = Image(data=buffer.getvalue(), format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)

    def finish(self) -> Figure:
        """Draw the final state once more and return the figure (to save it, for example)."""
        self.update()
        return self.figure()


def _ema(values: np.ndarray, decay: float) -> np.ndarray:
    """Exponential moving average, bias-corrected so that the first points are not pulled to 0."""
    out = np.empty_like(values)
    avg = 0.0
    for i, v in enumerate(values):
        avg = decay * avg + (1 - decay) * v
        out[i] = avg / (1 - decay ** (i + 1))
    return out


def plot_history(history, validation=(), title: str = "Student training") -> Figure:
    """The loss and validation curves of a finished run, drawn as :class:`LiveLossPlot` draws them.

    ``history`` and ``validation`` are :attr:`helpers.train.TrainResult.history` and
    ``.validation`` (or the same lists from a run's ``progress.json``), so a run that was
    resumed, or trained in another session, is drawn from its record.

    >>> fig = plot_history([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}],
    ...                    [{"step": 2, "val_loss": 1.1, "val_accuracy": 0.5}])
    >>> len(fig.axes)
    2
    """
    plot = LiveLossPlot(title=title, live=False)
    for info in history:
        plot({**info, "kind": "step"})
    for point in validation:
        plot({**point, "kind": "validation"})
    return plot.figure()


_WEIGHT_COLOURS = {0: ("#e8e8e8", "#555"), 1: ("#b7e4c7", "#1b4332")}  # (background, text)


def show_example_tokens(tokenizer, example, max_tokens: int = 600):
    """One training example's tokens, coloured by their weight in the loss, as HTML.

    Grey tokens have weight 0: the chat markup and the query, which the student reads
    but is not trained to write. Green tokens have weight 1: the answer and its
    end-of-turn token, the only ones the loss counts (so the student learns the label
    *and* to stop). Hovering a token shows its id and weight. Tokens that are only
    part of a character (byte-level tokenizers split some characters) are shown
    together with the rest of the character.

    Parameters
    ----------
    tokenizer : the tokenizer that rendered the example.
    example : a :class:`helpers.render.RenderedExample` (``tokens``, ``weights``).
    max_tokens : show at most this many tokens (a long teacher prompt would fill the page).

    Returns
    -------
    An ``IPython.display.HTML`` object (its ``.data`` is the HTML text): the last
    expression of a notebook cell shows it.

    >>> from helpers.local.model import load_tokenizer
    >>> from helpers.render import conversation, render_example
    >>> tok = load_tokenizer()
    >>> html = show_example_tokens(tok, render_example(tok, conversation("Hallo", "de"))).data
    >>> "weight 1" in html and "&lt;|im_end|&gt;" in html
    True
    """
    from html import escape

    from IPython.display import HTML

    tokens, weights = list(example.tokens), list(example.weights)
    groups: list[tuple[list[int], float]] = []  # tokens shown as one box, and their weight
    for token, weight in zip(tokens[:max_tokens], weights[:max_tokens], strict=True):
        last = groups[-1] if groups else None
        if last and last[1] == weight and "\ufffd" in tokenizer.decode(last[0]) and len(last[0]) < 4:
            last[0].append(token)  # finish a character split over several tokens
        else:
            groups.append(([token], weight))
    boxes = []
    for ids, weight in groups:
        background, colour = _WEIGHT_COLOURS[1 if weight > 0 else 0]
        text = escape(tokenizer.decode(ids)).replace("\n", "\\n")
        boxes.append(f'<span title="id {" ".join(map(str, ids))}, weight {weight:g}" style="background:{background};'
                     f'color:{colour};border:1px solid #fff;padding:1px 2px;white-space:pre">{text}</span>'
                     + ("<br>" if text.endswith("\\n") else ""))
    n_zero = sum(1 for w in weights if w == 0)
    legend = "".join(
        f'<span style="background:{_WEIGHT_COLOURS[k][0]};color:{_WEIGHT_COLOURS[k][1]};padding:1px 6px;'
        f'margin-right:8px">{label}</span>'
        for k, label in ((0, f"weight 0: prompt, {n_zero} tokens"),
                         (1, f"weight 1: answer + end of turn, {len(weights) - n_zero} tokens")))
    more = f" <i>... {len(tokens) - max_tokens} more tokens</i>" if len(tokens) > max_tokens else ""
    return HTML(f'<div style="font-family:monospace;line-height:1.9">{legend}<br>{"".join(boxes)}{more}</div>')
