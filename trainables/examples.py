"""Explanations a reader can look at: a few test instances, each as rows of its tokens coloured by every
importance measure and by the adversarial attention, as one self-contained HTML page and as a figure.

`choose_examples` picks the instances reproducibly from a per-instance table (one trial's, or the mean
over several trials', so that every setting and seed shows the same sentences): those where attention
agrees most and least with gradient, the one with the most different adversarial attention, and a typical
one per class. `build_examples` gathers their words, scores, label, prediction and τ values from a trial's
`instances` and `tokens` tables; `to_html` and `examples_figure` draw them. For a pair task (NLI) the rows
are the premise's tokens, which every measure ranks, and the hypothesis is shown as text above them.

Colour scale, the same in both: each row on its own, linear from white (0) to `HIGH_COLOUR` (the row's
largest score), since the measures have different units (probabilities, gradients, probability changes)
and a row is read for which of its tokens its measure ranks high. The exact scores are in the page's
tooltips and `data-value` attributes. Every text (words come from user data) is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure

from trainables import registry

MIN_LENGTH = 5  # shorter instances agree or disagree by chance (two tokens: τ is ±1), so they are avoided
MAX_LENGTH = 60  # longer ones too, where possible: the figure shows at most this many tokens
TOKENS_PER_LINE = 20  # tokens per line of the figure
HIGH_COLOUR = (8, 81, 156)  # RGB of a row's largest score
DARK_TEXT_ABOVE = 0.55  # white text on cells darker than this share of the scale
ADVERSARIAL = ("adv_attention", "adversarial attention")  # `tokens.parquet` column and row label
# One colour per row key (Okabe-Ito): the stripe that marks a row in the page and a measure's line in the
# analysis figures.
ROW_COLOURS = {
    "attention": "#0072B2",
    "gradient": "#E69F00",
    "loo": "#009E73",
    "integrated_gradients": "#CC79A7",
    "deeplift": "#D55E00",
    "lime": "#56B4E9",
    "adv_attention": "#CC3311",
    "random": "#7F7F7F",
}
SCALE = LinearSegmentedColormap.from_list(
    "row_scale", ["#ffffff", "#{:02x}{:02x}{:02x}".format(*HIGH_COLOUR)]
)
SCALE_NOTE = "each row on its own scale: white = 0, dark blue = the row's largest score (linear)"


@dataclass(frozen=True)
class Choice:
    """A chosen test instance (its `index` in the test split) and why it was chosen."""

    index: int
    reason: str


@dataclass(frozen=True)
class Row:
    """One coloured row: its key (a `tokens.parquet` column), label, scores [L] and, for a measure, the
    instance's comprehensiveness (NaN where not logged)."""

    key: str
    label: str
    scores: np.ndarray
    comprehensiveness: float = math.nan


@dataclass(frozen=True)
class Example:
    """A chosen instance ready to draw: words [L], its label and prediction as class names, the predicted
    class's probability, its Kendall τ per pair label, its adversarial max JSD (NaN without one), its rows,
    and for a pair task the hypothesis's words."""

    choice: Choice
    words: list[str]
    label: str
    prediction: str
    confidence: float
    taus: dict[str, float]
    adversarial_jsd: float
    rows: list[Row]
    hypothesis: list[str] | None = None


def class_name(label: int, class_names: Sequence[str]) -> str:
    """`negative (0)`: a label with its name among a dataset's `class_names` (settings.CLASS_NAMES)."""
    return f"{class_names[label]} ({label})"


def choose_examples(instances: pd.DataFrame, class_names: Sequence[str], trials: int = 1) -> list[Choice]:
    """Up to 3 + C distinct instances of `instances` (a row per test instance: `index`, `length`, `label`,
    and where logged `kendall_attn_grad`, `adv_max_jsd`: one trial's, or the mean of `trials` trials', as
    the reasons then say), one per class of `class_names`. Instances of MIN_LENGTH to MAX_LENGTH tokens are
    preferred; ties go to the lower index."""
    mean = f"mean of {trials} trials: " if trials > 1 else ""
    for keep in (instances["length"].between(MIN_LENGTH, MAX_LENGTH), instances["length"] >= MIN_LENGTH):
        if keep.any():
            instances = instances[keep]
            break
    chosen: list[Choice] = []

    def pick(frame: pd.DataFrame, key: pd.Series, reason: Callable[[pd.Series], str]) -> None:
        """Choose the not yet chosen row of `frame` with the smallest `key` (NaN never)."""
        frame = frame.assign(_key=key).dropna(subset=["_key"])
        frame = frame[~frame["index"].isin([c.index for c in chosen])]
        if not frame.empty:
            row = frame.sort_values(["_key", "index"], kind="stable").iloc[0]
            chosen.append(Choice(int(row["index"]), reason(row)))

    tau = instances.get("kendall_attn_grad")
    if tau is not None:
        pick(
            instances,
            -tau,
            lambda row: f"attention agrees most with gradient ({mean}τ = {row[tau.name]:.2f})",
        )
        pick(
            instances,
            tau,
            lambda row: f"attention agrees least with gradient ({mean}τ = {row[tau.name]:.2f})",
        )
    if "adv_max_jsd" in instances:
        jsd = instances["adv_max_jsd"]
        pick(
            instances,
            -jsd,
            lambda row: f"most different adversarial attention ({mean}JSD = {row[jsd.name]:.2f})",
        )
    for label in range(len(class_names)):
        name = class_name(label, class_names)
        part = instances[instances["label"] == label]
        if tau is not None:
            key, why = (part[tau.name] - part[tau.name].median()).abs(), "τ nearest its class's median"
        else:
            key, why = part["index"], "the first of its class"
        pick(part, key, lambda row, name=name, why=why: f"an instance of class {name} ({why})")
    return chosen


def build_examples(
    choices: list[Choice],
    instances: pd.DataFrame,
    tokens: pd.DataFrame,
    score_column: Callable[[str], str] = str,
    *,
    class_names: Sequence[str],
) -> list[Example]:
    """The chosen instances of one trial, from its `instances` and `tokens` tables (`index` columns; the
    tokens' `words`, else their `token_ids` as "#id"; a pair task's `hypothesis_words`); `score_column`
    maps a `tokens.parquet` column to its name in `tokens` (the analysis renames `attention`);
    `class_names` names the labels. Choices the trial lacks are left out."""
    instances, tokens = instances.set_index("index"), tokens.set_index("index")
    pairs = registry.logged_pairs(instances.columns)
    measures = [m for m in registry.ALL_ERASURE_ORDERS if score_column(m.name) in tokens.columns]
    examples = []
    for choice in choices:
        if choice.index not in instances.index or choice.index not in tokens.index:
            continue
        facts, scores = instances.loc[choice.index], tokens.loc[choice.index]
        words = scores.get("words")
        words = list(words) if words is not None else [f"#{i}" for i in scores["token_ids"]]
        rows = [
            Row(
                m.name,
                m.label,
                np.asarray(scores[score_column(m.name)], float),
                float(facts.get(registry.erasure_column("comprehensiveness", m.short), math.nan)),
            )
            for m in measures
        ]
        adversarial = scores.get(ADVERSARIAL[0])
        if adversarial is not None and len(adversarial) == len(words):
            rows.append(Row(ADVERSARIAL[0], ADVERSARIAL[1], np.asarray(adversarial, float)))
        hypothesis = scores.get("hypothesis_words")
        examples.append(
            Example(
                choice,
                [str(word) for word in words],
                class_name(int(facts["label"]), class_names),
                class_name(int(facts["prediction"]), class_names),
                confidence(facts),
                {pair.label: float(facts[f"kendall_{pair.name}"]) for pair in pairs},
                float(facts.get("adv_max_jsd", math.nan)),
                rows,
                None if hypothesis is None else [str(word) for word in hypothesis],
            )
        )
    return examples


def confidence(facts: pd.Series) -> float:
    """The predicted class's probability of an `instances` row: its `confidence`, or from `prob`
    (P(label 1)) in runs logged before C-class support."""
    if "confidence" in facts:
        return float(facts["confidence"])
    return max(float(facts["prob"]), 1 - float(facts["prob"]))


def shares(scores: np.ndarray) -> np.ndarray:
    """Scores [L] as shares of the row's largest one, in [0, 1] (all 0 for a row of zeros)."""
    scores = np.nan_to_num(np.asarray(scores, float), nan=0.0).clip(min=0)
    top = scores.max(initial=0.0)
    return scores / top if top > 0 else np.zeros_like(scores)


def background(share: float) -> str:
    """The CSS colour of a share of the row's largest score: linear from white to HIGH_COLOUR."""
    red, green, blue = (round(255 + share * (channel - 255)) for channel in HIGH_COLOUR)
    return f"rgb({red},{green},{blue})"


def facts_text(example: Example) -> str:
    """Label, prediction, τ values and adversarial JSD in one line of plain text."""
    parts = [
        f"label {example.label}",
        f"prediction {example.prediction} (its probability {example.confidence:.3f})",
        *(f"τ {pair} {value:.2f}" for pair, value in example.taus.items() if math.isfinite(value)),
    ]
    if math.isfinite(example.adversarial_jsd):
        parts.append(f"adversarial max JSD {example.adversarial_jsd:.2f}")
    return " · ".join(parts)


CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #111; max-width: 75em; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin: 1.6em 0 0.3em; }
p.facts { margin: 0 0 0.5em; font-size: 0.9em; color: #333; }
p.hypothesis { margin: 0 0 0.3em; font-style: italic; }
table { border-collapse: collapse; }
th { text-align: left; font-weight: normal; vertical-align: top; padding: 0.25em 0.8em 0.25em 0;
     white-space: nowrap; font-size: 0.9em; }
th small { color: #555; }
td { padding: 0.2em 0; line-height: 1.9; }
span.key { display: inline-block; width: 0.6em; height: 1.1em; vertical-align: middle;
           margin-right: 0.4em; }
span.t { padding: 0.1em 0.25em; margin-right: 0.15em; border-radius: 0.2em; border: 1px solid #ddd; }
div.legend { display: flex; align-items: center; gap: 0.6em; font-size: 0.9em; white-space: nowrap; }
p.note { font-size: 0.85em; color: #444; margin: 0.4em 0 0; }
div.ramp { width: 14em; height: 1em; border: 1px solid #999;
           background: linear-gradient(to right, #ffffff, HIGH); }
""".replace("HIGH", background(1.0))


def token_html(word: str, score: float, share: float) -> str:
    text = "#fff" if share > DARK_TEXT_ABOVE else "#000"
    return (
        f'<span class="t" data-value="{score!r}" title="{html.escape(word)}: {score:.4g}" '
        f'style="background:{background(share)};color:{text}">{html.escape(word)}</span>'
    )


def row_html(row: Row, words: list[str]) -> str:
    comprehensiveness = (
        f"<br><small>comprehensiveness {row.comprehensiveness:.3f}</small>"
        if math.isfinite(row.comprehensiveness)
        else ""
    )
    cells = " ".join(
        token_html(word, float(score), float(share))
        for word, score, share in zip(words, row.scores, shares(row.scores), strict=True)
    )
    colour = ROW_COLOURS.get(row.key, "#000000")
    return (
        f'<tr class="measure" data-measure="{html.escape(row.key)}"><th scope="row">'
        f'<span class="key" style="background:{colour}"></span>{html.escape(row.label)}{comprehensiveness}'
        f'</th><td class="tokens">{cells}</td></tr>'
    )


def hypothesis_text(example: Example) -> str:
    """A pair task's hypothesis as one line ("" for single texts)."""
    if example.hypothesis is None:
        return ""
    return f"hypothesis: {' '.join(example.hypothesis)} (the rows below are the premise)"


def hypothesis_html(example: Example) -> str:
    """A pair task's hypothesis as a paragraph above the premise's rows ("" for single texts)."""
    if example.hypothesis is None:
        return ""
    return f'<p class="hypothesis">{html.escape(hypothesis_text(example))}</p>'


def to_html(examples: list[Example], title: str) -> str:
    """One self-contained page (inline CSS, no script, no network asset): a legend, then per example a
    heading with why it was chosen, a line of facts and one row per measure."""
    sections = [
        f'<section class="instance" data-index="{example.choice.index}">'
        f"<h2>Test instance {example.choice.index}: {html.escape(example.choice.reason)}</h2>"
        f"{hypothesis_html(example)}"
        f'<p class="facts">{html.escape(facts_text(example))}</p>'
        f"<table>{''.join(row_html(row, example.words) for row in example.rows)}</table></section>"
        for example in examples
    ]
    legend = (
        '<div class="legend"><span>0</span><div class="ramp"></div>'
        "<span>the row's largest score</span></div>"
        f'<p class="note">{html.escape(SCALE_NOTE.capitalize())}; hover a token for its score. '
        "Comprehensiveness: the mean drop in the predicted class's probability when the measure's top 10%, "
        "20%, ..., 90% of the tokens are deleted.</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{legend}{''.join(sections)}</body></html>\n"
    )


# Figure layout in inches: fixed sizes, so that no layout engine has to measure every tick label.
FIGURE_WIDTH, LABEL_MARGIN, RIGHT_MARGIN = 15.0, 2.4, 0.3
TITLE_HEIGHT, HEADER_HEIGHT, ROW_HEIGHT, WORDS_HEIGHT, SCALE_HEIGHT = 0.55, 0.6, 0.28, 0.8, 1.0
HYPOTHESIS_HEIGHT = 0.22  # one more header line for a pair task's hypothesis


def examples_figure(examples: list[Example], title: str) -> Figure:
    """Per example a heading and its rows as a heatmap, TOKENS_PER_LINE tokens a line and at most
    MAX_LENGTH tokens (the page shows every token); a colour bar of the scale at the bottom."""
    lines = [max(1, math.ceil(min(len(e.words), MAX_LENGTH) / TOKENS_PER_LINE)) for e in examples]
    blocks = [len(e.rows) * ROW_HEIGHT + WORDS_HEIGHT for e in examples]
    headers = [HEADER_HEIGHT + (HYPOTHESIS_HEIGHT if e.hypothesis is not None else 0.0) for e in examples]
    height = (
        TITLE_HEIGHT
        + SCALE_HEIGHT
        + sum(header + n * block for header, n, block in zip(headers, lines, blocks, strict=True))
    )
    figure = Figure(figsize=(FIGURE_WIDTH, height))
    FigureCanvasAgg(figure)
    width = FIGURE_WIDTH - LABEL_MARGIN - RIGHT_MARGIN

    def axes(top: float, size: float, left: float = LABEL_MARGIN, across: float = width) -> Axes:
        """Axes whose top edge is `top` inches below the figure's top, `size` inches high."""
        return figure.add_axes(
            (left / FIGURE_WIDTH, 1 - (top + size) / height, across / FIGURE_WIDTH, size / height)
        )

    figure.text(0.5, 1 - 0.3 / height, title, ha="center", va="center", fontsize="large")
    top = TITLE_HEIGHT
    for example, header, count, block in zip(examples, headers, lines, blocks, strict=True):
        shown = min(len(example.words), MAX_LENGTH)
        clipped = f"; the first {shown} of {len(example.words)} tokens" if shown < len(example.words) else ""
        heading = f"Test instance {example.choice.index}: {example.choice.reason}{clipped}"
        text = "\n".join(filter(None, (heading, hypothesis_text(example), facts_text(example))))
        figure.text(0.01, 1 - (top + 0.05) / height, text, va="top")
        top += header
        matrix = np.array([shares(row.scores) for row in example.rows])
        for line in range(count):
            start, stop = line * TOKENS_PER_LINE, min((line + 1) * TOKENS_PER_LINE, shown)
            ax = axes(top, block - WORDS_HEIGHT)
            cells = np.full((len(example.rows), TOKENS_PER_LINE), np.nan)
            cells[:, : stop - start] = matrix[:, start:stop]
            ax.pcolormesh(cells, cmap=SCALE, vmin=0, vmax=1, edgecolors="white", linewidth=1.5)
            ax.set(xlim=(0, TOKENS_PER_LINE), ylim=(len(example.rows), 0))  # first row on top
            ax.set_yticks(
                np.arange(len(example.rows)) + 0.5, [row_label(row) for row in example.rows], fontsize=8
            )
            ax.set_xticks(
                np.arange(stop - start) + 0.5,
                example.words[start:stop],
                rotation=40,
                ha="right",
                rotation_mode="anchor",
                fontsize=9,
            )
            ax.tick_params(length=0)
            for spine in ax.spines.values():
                spine.set_visible(False)
            top += block
    bar = figure.colorbar(
        ScalarMappable(Normalize(0, 1), SCALE),
        cax=axes(top + 0.25, 0.2, LABEL_MARGIN + width / 4, width / 2),
        orientation="horizontal",
    )
    bar.set_label(f"score ÷ the row's largest score ({SCALE_NOTE})")
    return figure


def row_label(row: Row) -> str:
    if math.isfinite(row.comprehensiveness):
        return f"{row.label} (comp. {row.comprehensiveness:.2f})"
    return row.label


def write_examples(examples: list[Example], title: str, folder: Path) -> list[Path]:
    """`explanations.html` and `explanations.png` (150 dpi) in `folder`. Every trial writes them, so the
    PNG is compressed lightly: about 12% larger and a quarter faster to write than by default."""
    page, image = folder / "explanations.html", folder / "explanations.png"
    page.write_text(to_html(examples, title), encoding="utf-8")
    examples_figure(examples, title).savefig(image, dpi=150, pil_kwargs={"compress_level": 1})
    return [page, image]
