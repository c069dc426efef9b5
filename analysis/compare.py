"""Two sweeps of the same settings beside the published numbers, and which one sits closer to them.

python -m analysis.compare BASELINE.csv RUNS.csv --labels "random vectors" "word2vec" [--out FILE.md]

Each CSV is the `runs.csv` that `python -m analysis` writes (one row per trial, every logged metric), so
a sweep whose MLflow store is gone (e.g. the committed random-vector `paper` run) still compares.
Only runs trained as the papers trained count (`replication.paper_runs`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from analysis.markup import to_markdown
from analysis.names import SETTING
from analysis.replication import comparison, paper_runs

KEYS = ["table", *SETTING, "metric"]


def read_runs(path: Path) -> pd.DataFrame:
    """A `runs.csv` as `load_runs` returns it (seed as an integer)."""
    runs = pd.read_csv(path)
    runs["seed"] = runs["seed"].astype(int)
    return runs


def side_by_side(baseline: pd.DataFrame, runs: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    """Per published cell both sweeps' seed means, their distances to the published mean, and the closer
    sweep's label ("tie" within 0.0005); only cells that both sweeps have."""
    first, second = (comparison(paper_runs(frame)[0]) for frame in (baseline, runs))
    both = first.merge(second[[*KEYS, "mean", "seed_std"]], on=KEYS, suffixes=("_a", "_b"))
    both = both[(both["n_seeds"] > 0) & both["mean_b"].notna()]
    distance_a = (both["mean_a"] - both["published_mean"]).abs()
    distance_b = (both["mean_b"] - both["published_mean"]).abs()
    closer = [
        "tie" if abs(a - b) < 5e-4 else labels[0] if a < b else labels[1]
        for a, b in zip(distance_a, distance_b, strict=True)
    ]
    return pd.DataFrame(
        {
            **{key: both[key] for key in KEYS},
            "published": both["published_mean"],
            labels[0]: both["mean_a"],
            f"{labels[0]} seed std": both["seed_std_a"],
            labels[1]: both["mean_b"],
            f"{labels[1]} seed std": both["seed_std_b"],
            "closer": closer,
        }
    ).reset_index(drop=True)


def side_by_side_text(table: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    """The side-by-side table as text cells: mean (± std across seeds)."""
    text = pd.DataFrame(
        {
            "published": table["published"].map("{:.3f}".format),
            **{
                label: [f"{m:.3f} (± {s:.3f})" for m, s in zip(table[label], table[f"{label} seed std"])]
                for label in labels
            },
            "closer": table["closer"],
        }
    )
    text.index = pd.MultiIndex.from_frame(table[KEYS])
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.compare", description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="runs.csv of the first sweep")
    parser.add_argument("runs", type=Path, help="runs.csv of the second sweep")
    parser.add_argument("--labels", nargs=2, default=("baseline", "runs"), help="the two sweeps' names")
    parser.add_argument("--out", type=Path, help="write the Markdown table here (default: print it)")
    args = parser.parse_args(argv)
    for path in (args.baseline, args.runs):
        if not path.is_file():
            parser.exit(2, f"{parser.prog}: error: no runs.csv at {str(path)!r}\n")
    labels = tuple(args.labels)
    table = side_by_side(read_runs(args.baseline), read_runs(args.runs), labels)
    counts = table["closer"].value_counts()
    caption = (
        f"Published values beside two sweeps (mean over seeds, ± std across seeds); closer: the sweep "
        f"nearer the published mean ({', '.join(f'{label}: {counts.get(label, 0)}' for label in labels)}, "
        f"tie: {counts.get('tie', 0)})."
    )
    markdown = to_markdown(side_by_side_text(table, labels), caption)
    if args.out:
        args.out.write_text(markdown)
        table.to_csv(args.out.with_suffix(".csv"), index=False)
    else:
        print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
