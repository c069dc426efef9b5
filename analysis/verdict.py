"""The closing verdict per setting: does attention rank tokens like gradient and leave-one-out more than
chance does, and how far is it from the agreement of two equally good models (another seed)?

For attention against each base importance measure and for Kendall τ and both top-k formulas at k =
non-zero: the value, its chance level, whether value − chance exceeds two standard errors, the seed
ceilings (attention vs attention and the measure vs itself across seeds, from `analysis.seeds`) and the
fraction of the gap from chance to the attention ceiling that the value covers.
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.names import SETTING
from analysis.seeds import MEASURES, column
from analysis.tables import MISSING, format_number
from trainables import registry
from trainables.registry import Pair, Statistic

STATISTICS = tuple(statistic for statistic in registry.STATISTICS if statistic.k in (None, "nz"))
STANDARD_ERRORS = 2  # value − chance must exceed this many standard errors to count as above chance
COLUMNS = [
    *SETTING,
    "pair",
    "statistic",
    "value",
    "chance",
    "difference",
    "difference_se",
    "above_chance",
    "ceiling_attention",
    "ceiling_other",
    "gap_fraction",
    "n_instances",
    "n_seeds",
    "n_seed_pairs",
]


def verdict_pairs(instances: pd.DataFrame) -> tuple[Pair, ...]:
    """The logged pairs of attention with another base measure: those with a seed ceiling."""
    return tuple(
        pair
        for pair in registry.logged_pairs(instances.columns)
        if pair.first.name == "attention" and pair.second in MEASURES
    )


def calibrated(instances: pd.DataFrame, statistic: Statistic, pair: Pair) -> bool:
    """Whether the instances hold this statistic of this pair and its chance level."""
    name = f"{statistic.name}_{pair.name}"
    return name in instances and registry.chance_column(statistic.name, pair.name) in instances


def difference_test(value: pd.Series, chance: pd.Series) -> tuple[float, float, bool | None]:
    """Mean and standard error of value − chance over instances (shape (n,) each), and whether the mean
    exceeds `STANDARD_ERRORS` standard errors (None with fewer than two instances)."""
    difference = (value - chance).to_numpy(float)
    if difference.size < 2:
        return (float(difference.mean()) if difference.size else math.nan), math.nan, None
    mean = float(difference.mean())
    se = float(difference.std(ddof=1) / math.sqrt(difference.size))
    return mean, se, bool(mean > STANDARD_ERRORS * se)


def gap_fraction(difference: float, headroom: float, se: float) -> float:
    """(value − chance) / (ceiling − chance), the share of the way from chance to the seed ceiling; NaN
    unless the ceiling is above chance by more than the 2 standard errors that bound the difference (a
    ceiling within noise of chance would turn any difference into thousands of percent)."""
    noise = STANDARD_ERRORS * se if math.isfinite(se) else 0.0
    return difference / headroom if headroom > noise and headroom > 0 else math.nan


def verdict(instances: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per setting, attention pair and statistic (`STATISTICS`) with chance levels in `instances`:
    `COLUMNS`. An instance's value and chance level are first averaged over the seeds that scored it, so
    the standard error counts each test instance once. Ceilings are the means of `pairs` (from
    `analysis.seeds.seed_pairs`) over instances and seed pairs: NaN with one seed."""
    rows = []
    ceilings = dict(list(pairs.groupby(list(SETTING))))
    for setting, part in instances.groupby(list(SETTING), sort=True):
        seeds = ceilings.get(setting, pairs.iloc[:0])
        for pair in verdict_pairs(part):
            for statistic in STATISTICS:
                if not calibrated(part, statistic, pair):
                    continue
                name, chance = (
                    f"{statistic.name}_{pair.name}",
                    registry.chance_column(statistic.name, pair.name),
                )
                scored = part[["index", name, chance]].dropna()
                per_instance = scored.groupby("index").mean()
                difference, se, above = difference_test(per_instance[name], per_instance[chance])
                ceiling = float(seeds[column(pair.first, statistic)].mean()) if len(seeds) else math.nan
                other = float(seeds[column(pair.second, statistic)].mean()) if len(seeds) else math.nan
                level = float(per_instance[chance].mean()) if len(per_instance) else math.nan
                gap = gap_fraction(difference, ceiling - level, se)
                rows.append(
                    dict(zip(SETTING, setting, strict=True))
                    | {
                        "pair": pair.label,
                        "statistic": statistic.short_label,
                        "value": float(per_instance[name].mean()) if len(per_instance) else math.nan,
                        "chance": level,
                        "difference": difference,
                        "difference_se": se,
                        "above_chance": above,
                        "ceiling_attention": ceiling,
                        "ceiling_other": other,
                        "gap_fraction": gap,
                        "n_instances": len(per_instance),
                        "n_seeds": part.loc[scored.index, "seed"].nunique(),
                        "n_seed_pairs": len(seeds[["seed_a", "seed_b"]].drop_duplicates()),
                    }
                )
    return pd.DataFrame(rows, columns=COLUMNS)


def format_difference(difference: float, se: float) -> str:
    """ "+0.231 ± 0.024": value − chance and the margin it must exceed to count as above chance."""
    if math.isnan(difference):
        return MISSING
    return f"{difference:+.3f}" if math.isnan(se) else f"{difference:+.3f} ± {STANDARD_ERRORS * se:.3f}"


def format_answer(above: bool | None) -> str:
    return MISSING if above is None or pd.isna(above) else ("yes" if above else "no")


def verdict_text(table: pd.DataFrame) -> pd.DataFrame:
    """The verdict as text cells for Markdown and LaTeX: rows setting, pair and statistic."""
    text = pd.DataFrame(
        {
            "value": table["value"].map(format_number),
            "chance": table["chance"].map(format_number),
            f"value − chance ± {STANDARD_ERRORS} SE": list(
                map(format_difference, table["difference"], table["difference_se"])
            ),
            "above chance?": table["above_chance"].map(format_answer),
            "ceiling: attention across seeds": table["ceiling_attention"].map(format_number),
            "ceiling: the other measure across seeds": table["ceiling_other"].map(format_number),
            "gap covered": [MISSING if math.isnan(g) else f"{g:.0%}" for g in table["gap_fraction"]],
        }
    )
    text.index = pd.MultiIndex.from_frame(table[[*SETTING, "pair", "statistic"]])
    return text
