"""Our numbers beside the published ones: `reference/published.csv` joined with the seed summaries."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.aggregate import seed_summary
from analysis.names import SETTING

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
    "difference",
]


def comparison(runs: pd.DataFrame, published: Path = PUBLISHED) -> pd.DataFrame:
    """One row per published cell whose setting the sweep has: our seed summary, theirs, and ours − theirs.

    `mean` is our mean over seeds of the logged per-trial mean, `within_std` the mean of the logged
    within-trial std (`.../mean` -> `.../std`), `seed_std` the std across seeds. An empty frame when the
    sweep ran none of the published settings.
    """
    reference = pd.read_csv(published, dtype={"mean": float, "std": float})
    reference = reference.rename(columns={"mean": "published_mean", "std": "published_std"})
    present = runs[list(SETTING)].drop_duplicates()
    reference = reference.merge(present, on=list(SETTING), how="inner")
    rows = []
    for record in reference.to_dict("records"):
        spread = record["metric"].removesuffix("/mean") + "/std"
        summary = seed_summary(runs, record["metric"], spread)
        ours = summary.merge(pd.DataFrame([record])[list(SETTING)], on=list(SETTING)).iloc[0]
        rows.append({**record, **{k: ours[k] for k in ("mean", "within_std", "seed_std", "n_seeds")}})
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
    text.index = pd.MultiIndex.from_frame(table[["table", *SETTING, "metric"]])
    return text
