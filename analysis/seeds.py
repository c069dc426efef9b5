"""Agreement between seeds: how far two models of the same setting, trained with different seeds, agree on
which tokens matter; read from the trials' `tokens.parquet`, nothing is retrained.

Two equally good models are the ceiling an agreement between measures can be held to: attention of
seed i against attention of seed j, and likewise gradient and leave-one-out, with every statistic of the
registry computed as a trial computes it (k from seed i's attention). The Jensen-Shannon divergence
between the two seeds' attention distributions is Wiegreffe & Pinter (2019)'s baseline for Jain &
Wallace's adversarial JSD: an adversary is only remarkable if it diverges more than another seed does.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from analysis.load import loaded_name
from analysis.names import SETTING
from analysis.tables import MISSING, make_index
from trainables import registry
from trainables.correlation import batch_kendall_tau_b, batch_published_top_k_tau, batch_top_k_kendall_tau
from trainables.registry import Measure, Statistic

MEASURES = registry.BASE_MEASURES  # those every trial has: attention, gradient, leave-one-out
TOKEN_COLUMNS = ["index", "token_ids", *(measure.name for measure in MEASURES)]  # of `tokens.parquet`
SCORES = {measure.name: loaded_name(measure.name) for measure in MEASURES}  # their loaded columns
JSD = "attention_jsd"
TOP_K = {"topk": batch_top_k_kendall_tau, "topk_published": batch_published_top_k_tau}


def column(measure: Measure, statistic: Statistic) -> str:
    """`attention_topk_nz`: a statistic between two seeds' scores of one measure."""
    return f"{measure.name}_{statistic.name}"


def k_values(attention: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The k of a trial's top-k statistics from one seed's attention of m instances, each shape (m,):
    "avg" the mean test length rounded, "nz" the instance's non-zero weights; both at least 1."""
    lengths = np.array([len(row) for row in attention])
    nonzero = np.array([int((row > 0).sum()) for row in attention])
    return {
        "avg": np.full(len(attention), max(1, round(float(lengths.mean())))),
        "nz": np.maximum(nonzero, 1),
    }


def jensen_shannon(p: list[np.ndarray], q: list[np.ndarray]) -> np.ndarray:
    """Jensen-Shannon divergence in nats (at most ln 2) between distributions p_i and q_i, each shape
    (n_i,); output shape (m,). Zero-padded to one width, where the padding adds nothing."""
    width = max((len(row) for row in p), default=0)
    padded = [np.zeros((len(p), width)), np.zeros((len(q), width))]
    for matrix, rows in zip(padded, (p, q), strict=True):
        for i, row in enumerate(rows):
            matrix[i, : len(row)] = row
    return jensenshannon(padded[0], padded[1], axis=1) ** 2 if len(p) else np.empty(0)


def compare(first: pd.DataFrame, second: pd.DataFrame, statistics: tuple[Statistic, ...]) -> pd.DataFrame:
    """Per test instance both seeds scored (joined on `index`; instances whose tokens differ are dropped
    with a warning): every statistic between seed one's and seed two's scores of each measure, with k
    from seed one's attention as in a trial, and the JSD between their attention distributions."""
    both = first.merge(second, on="index", suffixes=("_a", "_b"))
    same = np.array([np.array_equal(a, b) for a, b in zip(both["token_ids_a"], both["token_ids_b"])], bool)
    if not same.all():
        warnings.warn(f"{(~same).sum()} test instances differ between seeds and are left out", stacklevel=2)
        both = both[same]
    attention = SCORES["attention"]
    table = {"index": both["index"].to_numpy()}
    k = k_values(list(both[f"{attention}_a"]))
    for measure in MEASURES:
        a, b = list(both[f"{SCORES[measure.name]}_a"]), list(both[f"{SCORES[measure.name]}_b"])
        for statistic in statistics:
            if statistic.formula == "kendall":
                table[column(measure, statistic)] = batch_kendall_tau_b(a, b)
            else:
                table[column(measure, statistic)] = TOP_K[statistic.formula](a, b, k[statistic.k])
    table[JSD] = jensen_shannon(list(both[f"{attention}_a"]), list(both[f"{attention}_b"]))
    return pd.DataFrame(table)


def seed_pairs(tokens: pd.DataFrame) -> pd.DataFrame:
    """One row per setting, pair of its seeds (seed_a < seed_b) and test instance, from the per-token
    frame of `analysis.load_tokens` (its `TOKEN_COLUMNS` suffice): columns SETTING, seed_a, seed_b,
    index, `{measure}_{statistic}` for every base measure and registry statistic, and `attention_jsd`.
    Empty when no setting has two seeds."""
    statistics = registry.STATISTICS
    columns = [*SETTING, "seed_a", "seed_b", "index"]
    columns += [column(m, s) for m in MEASURES for s in statistics] + [JSD]
    scored = ["index", "token_ids", *SCORES.values()]
    parts = []
    for setting, group in tokens.groupby(list(SETTING), sort=True):
        by_seed = dict(list(group.groupby("seed", sort=True)))
        for seed_a, seed_b in itertools.combinations(by_seed, 2):
            table = compare(by_seed[seed_a][scored], by_seed[seed_b][scored], statistics)
            front = dict(zip(SETTING, setting, strict=True)) | {"seed_a": seed_a, "seed_b": seed_b}
            parts.append(table.assign(**front))
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def several_seeds(runs: pd.DataFrame) -> bool:
    """Whether some setting has two finished trials: the seed comparisons need them."""
    done = runs[runs["status"] == "FINISHED"]
    return bool((done.groupby(list(SETTING))["seed"].nunique() > 1).any())


def summary(values: pd.Series) -> dict[str, float]:
    """Mean, std (ddof 0, as the trials' summaries) and count of the non-NaN `values`."""
    kept = values.dropna().to_numpy(float)
    return {
        "mean": float(kept.mean()) if kept.size else np.nan,
        "std": float(kept.std()) if kept.size else np.nan,
        "n": int(kept.size),
    }


def seed_agreement(pairs: pd.DataFrame, instances: pd.DataFrame) -> pd.DataFrame:
    """Per setting with seed pairs and per statistic, the agreement between seeds of each base measure
    (mean, std and n over instances and seed pairs) beside the agreement between those measures (over
    instances, seeds pooled: the Table 1/2 numbers). Long frame, one row per setting, statistic and
    comparison: SETTING, statistic, kind ("seeds" or "measures"), comparison, column, mean, std, n."""
    rows = []
    between = [p for p in registry.logged_pairs(instances.columns) if {p.first, p.second} <= set(MEASURES)]
    scored_by_setting = dict(list(instances.groupby(list(SETTING))))
    for setting, part in pairs.groupby(list(SETTING), sort=True):
        keys = dict(zip(SETTING, setting, strict=True))
        scored = scored_by_setting.get(setting, instances.iloc[:0])
        for statistic in registry.STATISTICS:
            for measure in MEASURES:
                name = column(measure, statistic)
                rows.append(
                    {**keys, "statistic": statistic.short_label, "kind": "seeds", "comparison": measure.label}
                    | {"column": name, **summary(part[name])}
                )
            for pair in between:
                name = f"{statistic.name}_{pair.name}"
                if name not in scored:
                    continue
                rows.append(
                    {**keys, "statistic": statistic.short_label, "kind": "measures", "comparison": pair.label}
                    | {"column": name, **summary(scored[name])}
                )
    return pd.DataFrame(
        rows, columns=[*SETTING, "statistic", "kind", "comparison", "column", "mean", "std", "n"]
    )


def adversarial_vs_seeds(pairs: pd.DataFrame, instances: pd.DataFrame) -> pd.DataFrame:
    """Wiegreffe & Pinter (2019)'s comparison per setting with seed pairs: the adversarial max JSD of
    Jain & Wallace's search (instances of all seeds) beside the JSD between two seeds' attention of the
    same instance (instances and seed pairs). Columns SETTING, then mean, std, median and n of each, as
    `adversarial_*` and `seeds_*`; NaN adversarial numbers where the trials ran no search."""
    rows = []
    scored_by_setting = dict(list(instances.groupby(list(SETTING))))
    for setting, part in pairs.groupby(list(SETTING), sort=True):
        scored = scored_by_setting.get(setting, instances.iloc[:0])
        adversarial = scored["adv_max_jsd"] if "adv_max_jsd" in scored else pd.Series(dtype=float)
        row = dict(zip(SETTING, setting, strict=True))
        for name, values in (("adversarial", adversarial), ("seeds", part[JSD])):
            numbers = summary(values)
            numbers["median"] = float(values.median()) if numbers["n"] else np.nan
            row |= {f"{name}_{key}": numbers[key] for key in ("mean", "std", "median", "n")}
        rows.append(row)
    statistics = [
        f"{name}_{key}" for name in ("adversarial", "seeds") for key in ("mean", "std", "median", "n")
    ]
    return pd.DataFrame(rows, columns=[*SETTING, *statistics])


KINDS = {"seeds": "between seeds", "measures": "between measures"}


def mean_std(mean: float, std: float) -> str:
    return MISSING if math.isnan(mean) else f"{mean:.3f} ± {std:.3f}"


def seed_agreement_text(table: pd.DataFrame) -> pd.DataFrame:
    """`seed_agreement` as text cells "mean ± std": rows setting and statistic, columns the comparisons,
    those between seeds first."""
    rows = [*SETTING, "statistic"]
    cells = {
        (tuple(record[r] for r in rows), (KINDS[record["kind"]], record["comparison"])): mean_std(
            record["mean"], record["std"]
        )
        for record in table.to_dict("records")
    }
    row_keys = list(dict.fromkeys(row for row, _ in cells))
    column_keys = list(dict.fromkeys(column for _, column in cells))
    data = [[cells.get((row, key), MISSING) for key in column_keys] for row in row_keys]
    return pd.DataFrame(
        data, index=make_index(row_keys, rows), columns=make_index(column_keys, ["agreement", "comparison"])
    )


def adversarial_vs_seeds_text(table: pd.DataFrame) -> pd.DataFrame:
    """`adversarial_vs_seeds` as text cells "mean ± std (median m, n)", one row per setting."""

    def cells(name: str) -> list[str]:
        return [
            MISSING if not n else f"{mean_std(mean, std)} (median {median:.3f}, n={n})"
            for mean, std, median, n in table[
                [f"{name}_{key}" for key in ("mean", "std", "median", "n")]
            ].itertuples(index=False)
        ]

    text = pd.DataFrame(
        {
            "adversarial max JSD (Jain & Wallace)": cells("adversarial"),
            "JSD between seeds' attention (Wiegreffe & Pinter)": cells("seeds"),
        }
    )
    text.index = pd.MultiIndex.from_frame(table[list(SETTING)])
    return text
