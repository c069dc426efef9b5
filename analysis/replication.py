"""Our numbers beside the published ones: `reference/published.csv` joined with the seed summaries, for
the runs trained as the papers trained (`paper_runs`): a 2-epoch model on 300 sentences is no replication.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from analysis.aggregate import seed_summary
from analysis.load import PARAM_PREFIX
from analysis.names import SETTING
from trainables.settings import DataSettings, TrainSettings

PUBLISHED = Path(__file__).parent / "reference" / "published.csv"
COLUMNS = [
    "source",
    "table",
    *SETTING,
    "metric",
    "published_mean",
    "published_std",
    "mean",
    "within_std",
    "seed_std",
    "n_seeds",
    "chance",
    "difference",
]
PAPER = TrainSettings()  # Jain & Wallace's model and training, which Neely & Schouten follow
MIN_EPOCHS = 10  # fewer allowed epochs than this cannot reach the papers' early-stopping point


def param(run: pd.Series, name: str, default: object) -> object:
    """A run's logged config value `name` (`data.max_examples`), parsed; `default` where the run did not
    log it (the settings' default) or logged "None"."""
    value = run.get(f"{PARAM_PREFIX}{name}")
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "None":
        return default
    return int(value) if str(value).lstrip("-").isdigit() else value


def departures(run: pd.Series) -> list[str]:
    """How a run's training departs from the papers': every test example of the full splits
    (`data.max_examples` unset), at least `MIN_EPOCHS` epochs allowed, and their embedding and hidden
    sizes. Empty for a run trained as the papers trained."""
    found = []
    examples = param(run, "data.max_examples", DataSettings().max_examples)
    if examples is not None:
        found.append(f"data.max_examples = {examples}")
    epochs = param(run, "train.max_epochs", PAPER.max_epochs)
    if epochs < MIN_EPOCHS:
        found.append(f"train.max_epochs = {epochs} < {MIN_EPOCHS}")
    for name in ("embed_dim", "hidden_size"):
        value = param(run, f"train.{name}", getattr(PAPER, name))
        if value != getattr(PAPER, name):
            found.append(f"train.{name} = {value}, not {getattr(PAPER, name)}")
    return found


def paper_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The runs trained as the papers trained, and the distinct departures of the others (in order)."""
    found = [departures(run) for _, run in runs.iterrows()]
    kept = runs[[not reasons for reasons in found]]
    return kept, list(dict.fromkeys(reason for reasons in found for reason in reasons))


def comparison(runs: pd.DataFrame, published: Path = PUBLISHED) -> pd.DataFrame:
    """One row per published cell whose setting the sweep has: our seed summary, theirs, and ours − theirs.

    `mean` is our mean over seeds of the logged per-trial mean, `within_std` the mean of the logged
    within-trial std (`.../mean` -> `.../std`), `seed_std` the std across seeds, `chance` the mean over
    seeds of our chance level (`.../chance`; NaN where not logged). An empty frame when the runs cover
    none of the published settings: pass `paper_runs(runs)[0]` to compare only runs trained as the papers.
    """
    reference = pd.read_csv(published, dtype={"mean": float, "std": float})
    reference = reference.rename(columns={"mean": "published_mean", "std": "published_std"})
    present = runs[list(SETTING)].drop_duplicates()
    reference = reference.merge(present, on=list(SETTING), how="inner")
    rows = []
    for record in reference.to_dict("records"):
        stem = record["metric"].removesuffix("/mean")
        setting = pd.DataFrame([record])[list(SETTING)]
        ours = seed_summary(runs, record["metric"], f"{stem}/std").merge(setting, on=list(SETTING)).iloc[0]
        chance = seed_summary(runs, f"{stem}/chance").merge(setting, on=list(SETTING)).iloc[0]
        numbers = {k: ours[k] for k in ("mean", "within_std", "seed_std", "n_seeds")}
        rows.append({**record, **numbers, "chance": chance["mean"]})
    table = pd.DataFrame(rows, columns=COLUMNS[:-1])
    table["difference"] = table["mean"] - table["published_mean"]
    return table[COLUMNS]


def comparison_text(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison as text cells for Markdown and LaTeX."""

    def ours(row: pd.Series) -> str:
        if row["n_seeds"] == 0:
            return "—"
        seeds = f" (seeds ± {row['seed_std']:.3f}, n={row['n_seeds']})" if row["n_seeds"] > 1 else ""
        return f"{row['mean']:.3f} ± {row['within_std']:.3f}{seeds}"

    text = pd.DataFrame(
        {
            "published": [
                f"{m:.3f} ± {s:.3f}" for m, s in zip(table["published_mean"], table["published_std"])
            ],
            "ours": table.apply(ours, axis=1),
            "difference": [("—" if pd.isna(d) else f"{d:+.3f}") for d in table["difference"]],
        }
    )
    if table["chance"].notna().any():  # runs of older trials logged no chance levels
        text.insert(2, "our chance level", [("—" if pd.isna(c) else f"{c:.3f}") for c in table["chance"]])
    text.index = pd.MultiIndex.from_frame(table[["table", *SETTING, "metric"]])
    return text
