"""Example explanations per setting: the same test instances in every setting's figure, so that settings
(and seeds) can be compared sentence by sentence.

The instances are chosen once per dataset (`trainables.examples.choose_examples`) from the mean over all
finished trials of that dataset of each instance's τ and adversarial JSD: the test split is the same in
every trial of a sweep, so an instance's `index` names the same sentence everywhere. Each setting's
figure shows the trial of its lowest finished seed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.figures import save, select
from analysis.load import loaded_name
from analysis.names import setting_name, setting_title
from trainables.examples import Choice, build_examples, choose_examples, examples_figure
from trainables.settings import CLASS_NAMES

CHOICE_COLUMNS = {"length": "first", "label": "first", "kendall_attn_grad": "mean", "adv_max_jsd": "mean"}


def dataset_choices(instances: pd.DataFrame) -> dict[str, tuple[int, list[Choice]]]:
    """Per dataset, its number of trials and the instances chosen from their instances pooled by `index`
    (τ and JSD: the mean over the trials)."""
    choices = {}
    for dataset, part in instances.groupby("dataset", sort=True):
        columns = {name: how for name, how in CHOICE_COLUMNS.items() if name in part}
        pooled = part.groupby("index", as_index=False).agg(columns)
        trials = part["run_id"].nunique()
        choices[dataset] = (trials, choose_examples(pooled, CLASS_NAMES[dataset], trials))
    return choices


def lowest_seed(instances: pd.DataFrame) -> pd.DataFrame:
    """The rows of the trial with the lowest seed in `instances` (one setting's)."""
    return instances[instances["seed"] == instances["seed"].min()]


def write_example_figures(
    instances: pd.DataFrame, tokens: pd.DataFrame, settings: pd.DataFrame, folder: Path
) -> tuple[list[Path], list[str]]:
    """`examples_<setting>` (PNG, SVG, PDF) for every expected setting with instances and tokens, and the
    report's lines: which instances were chosen and why, and each figure."""
    if instances.empty or tokens.empty:
        return [], ["Not drawn: no finished trial left per-instance and per-token results.\n"]
    if "words" not in tokens:
        return [], ["Not drawn: the trials' `tokens.parquet` hold no words (they predate them).\n"]
    folder.mkdir(parents=True, exist_ok=True)
    choices = dataset_choices(instances)
    lines = [
        "The same test instances in every setting of a dataset, chosen from the mean over its trials; each "
        "figure shows the trial of the setting's lowest seed. Each row is coloured on its own scale (white: "
        "0, dark blue: the row's largest score); the explanations.html of a trial's MLflow run shows the "
        "exact scores.\n"
    ]
    for dataset, (trials, chosen) in choices.items():
        lines.append(f"Instances of `{dataset}` ({trials} finished trials):\n")
        lines += [f"- {choice.index}: {choice.reason}" for choice in chosen]
        lines.append("")
    paths: list[Path] = []
    for setting in settings.to_dict("records"):
        # a column the trial did not write is all NaN where other trials' tables (another dataset's: a
        # pair task's hypothesis, a newer trial's confidence) have it: left out, as the trial left it
        trial = lowest_seed(select(instances, setting)).dropna(axis=1, how="all")
        if trial.empty:
            continue
        run_tokens = tokens[tokens["run_id"] == trial["run_id"].iloc[0]].dropna(axis=1, how="all")
        dataset = setting["dataset"]
        examples = build_examples(
            choices[dataset][1], trial, run_tokens, loaded_name, class_names=CLASS_NAMES[dataset]
        )
        if not examples:
            continue
        name = setting_name(setting)
        seed = trial["seed"].iloc[0]
        title = f"What each measure ranks high: {setting_title(setting)}, seed {seed}"
        paths += save(examples_figure(examples, title), folder / f"examples_{name}")
        lines.append(f"![examples_{name}](figures/examples_{name}.png)\n")
    return paths, lines
