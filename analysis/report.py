"""`analyze`: a finished sweep's tables and figures, straight from its MLflow store, into one folder."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd

from analysis.aggregate import axis_values, expected_settings, trial_status
from analysis.examples import write_example_figures
from analysis.faithfulness import write_faithfulness_figure
from analysis.figures import seeds_text, write_figures
from analysis.load import connect, fetch_instances, fetch_runs, fetch_tokens
from analysis.markup import to_latex, to_markdown
from analysis.names import SETTING, logged_chance
from analysis.replication import comparison, comparison_text, paper_runs
from analysis.seeds import (
    adversarial_vs_seeds,
    adversarial_vs_seeds_text,
    seed_agreement,
    seed_agreement_text,
    seed_pairs,
    several_seeds,
)
from analysis.tables import MISSING, TABLES, build
from analysis.verdict import STANDARD_ERRORS, verdict, verdict_text
from sweep.tracking import DEFAULT_OUTPUT_DIR

CALIBRATED_TABLES = ("table1_kendall_softmax", "table2_topk", "agreement_all_pairs")  # with chance levels
OWN_SECTION_TABLES = (*CALIBRATED_TABLES, "faithfulness")
EXAMPLES_SECTION = "Example explanations"


def default_out_dir() -> Path:
    """`outputs/analysis` beside run_sweep's outputs."""
    return DEFAULT_OUTPUT_DIR / "analysis"


def folder_name(experiment: str) -> str:
    """The experiment name as one safe path component."""
    return re.sub(r"[^\w.-]+", "_", experiment).strip(".") or "experiment"


def caption_note(runs: pd.DataFrame) -> str:
    """What the cells mean beyond the table's own caption: seeds, and the missing mark."""
    seeds = axis_values(runs)["seed"]
    note = f" {MISSING} marks a setting with no finished trial, or a number its trials did not log."
    if len(seeds) > 1:
        note = (
            f" Each cell is the mean over seeds (± the mean within-trial std where there is one), with the "
            f"std across seeds and the number n of the {len(seeds)} seeds that finished." + note
        )
    return note


def save_table(folder: Path, name: str, numbers: pd.DataFrame, text: pd.DataFrame, caption: str) -> str:
    """`<name>.csv` (numbers), `.md` and `.tex` (text) in `folder`; returns the Markdown."""
    numbers.to_csv(folder / f"{name}.csv", index=False)
    markdown = to_markdown(text, caption)
    (folder / f"{name}.md").write_text(markdown)
    (folder / f"{name}.tex").write_text(to_latex(text, caption, name))
    return markdown


def spec_tables(runs: pd.DataFrame, folder: Path) -> dict[str, str]:
    """Each table of `TABLES` the runs have cells for; returns the Markdown by name."""
    markdown = {}
    for make in TABLES:
        spec = make(runs)
        if spec.cells:
            long, wide = build(spec, runs)
            markdown[spec.name] = save_table(folder, spec.name, long, wide, spec.caption + caption_note(runs))
    return markdown


def chance_section(runs: pd.DataFrame, tables: dict[str, str]) -> list[str]:
    """Tables 1 and 2 and the agreement of every pair, with their chance levels where logged."""
    note = (
        []
        if logged_chance(runs.columns)
        else ["The trials logged no chance levels (they predate them): the tables show values only.\n"]
    )
    return note + [tables[name] for name in CALIBRATED_TABLES if name in tables]


def seed_section(runs: pd.DataFrame, instances: pd.DataFrame, pairs: pd.DataFrame, folder: Path) -> list[str]:
    """How far two seeds of a setting agree, beside how far the measures agree, and Wiegreffe & Pinter's
    seed JSD beside the adversarial JSD; a note instead where no setting has two finished seeds."""
    if pairs.empty:
        return [
            "Not computed: no setting has two finished trials that differ only in seed "
            f"({seeds_text(runs)}), and the agreement between seeds needs them.\n"
        ]
    counts = pairs.groupby(list(SETTING))[["seed_a", "seed_b"]].apply(lambda p: len(p.drop_duplicates()))
    low, high = counts.min(), counts.max()
    n_pairs = f"{low}" if low == high else f"{low} to {high}"
    agreement = seed_agreement(pairs, instances)
    caption = (
        "Agreement between seeds beside agreement between measures: per setting and statistic, mean ± std "
        "over test instances of a measure's ranking by one seed's model against another's (every pair of "
        f"seeds, {n_pairs} pairs a setting; k from the first seed's attention, as in a trial), and of one "
        "measure against another (seeds pooled: the numbers of Tables 1 and 2)."
    )
    parts = [save_table(folder, "seed_agreement", agreement, seed_agreement_text(agreement), caption)]
    jsd = adversarial_vs_seeds(pairs, instances)
    caption = (
        "Adversarial attention against another seed (Wiegreffe & Pinter 2019): per setting, Jain & "
        "Wallace's adversarial max JSD (nats, at most ln 2; seeds pooled) beside the JSD between the "
        "attention distributions of two seeds' models on the same test instance (every pair of seeds)."
    )
    parts.append(save_table(folder, "adversarial_vs_seeds", jsd, adversarial_vs_seeds_text(jsd), caption))
    return parts


def verdict_section(
    runs: pd.DataFrame, instances: pd.DataFrame, pairs: pd.DataFrame, folder: Path
) -> list[str]:
    """The verdict table, or why there is none."""
    if instances.empty:
        return ["Not computed: no finished trial left per-instance results.\n"]
    table = verdict(instances, pairs)
    if table.empty:
        return ["Not computed: the trials logged no per-instance chance levels (they predate them).\n"]
    caption = (
        "Verdict per setting: attention against gradient and leave-one-out, mean over test instances "
        "(each averaged over its seeds). Above chance: value − chance exceeds "
        f"{STANDARD_ERRORS} standard errors of its mean over instances. Ceilings: the same statistic "
        "between two seeds' models, for attention and for the other measure. Gap covered: (value − "
        "chance) / (attention ceiling − chance); — where the ceiling is not above chance by more than "
        f"{STANDARD_ERRORS} standard errors, and above 100% where attention agrees with the other measure "
        "more than with another seed's attention."
    )
    parts = [save_table(folder, "verdict", table, verdict_text(table), caption)]
    if pairs.empty:
        parts.insert(
            0, "The ceilings need two seeds of a setting; this sweep has one, so they are missing.\n"
        )
    return parts


def replication_section(runs: pd.DataFrame, folder: Path) -> list[str]:
    """Our numbers beside the published ones, for the runs trained as the papers trained; else why not."""
    kept, reasons = paper_runs(runs)
    published = comparison(kept)
    if published.empty:
        if kept.empty:
            return [
                f"Left out: no run was trained as the papers trained ({'; '.join(reasons)}), so these "
                "numbers would be no replication of theirs.\n"
            ]
        return ["Left out: the sweep ran none of the settings with published numbers.\n"]
    caption = (
        "Our results beside the published ones (mean ± std over test instances; ours also across seeds); "
        "difference = ours − published. N&S's Table 2 values are compared with both top-k formulas: "
        "`topk_ns_nz` is theirs, `topk_nz` Fagin's. Sources: analysis/reference/README.md."
    )
    parts = [save_table(folder, "replication", published, comparison_text(published), caption)]
    if len(kept) < len(runs):
        parts.insert(
            0,
            f"{len(runs) - len(kept)} runs not trained as the papers are left out ({'; '.join(reasons)}).\n",
        )
    return parts


def faithfulness_section(tables: dict[str, str]) -> list[str]:
    """The erasure faithfulness table, or why there is none."""
    if "faithfulness" not in tables:
        return ["Not computed: the trials logged no erasure faithfulness (they predate it).\n"]
    return [
        "Which measure's top tokens move the prediction most, every setting side by side: figure "
        "`faithfulness`.\n",
        tables["faithfulness"],
    ]


def write_tables(
    runs: pd.DataFrame, instances: pd.DataFrame, pairs: pd.DataFrame, folder: Path
) -> dict[str, list[str]]:
    """Every table into `folder` as CSV, Markdown and LaTeX; returns the report's sections: a title and
    its Markdown tables, or one-line notes on why a table is absent."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = spec_tables(runs, folder)
    return {
        "Agreement between measures, against chance": chance_section(runs, tables),
        "Agreement between seeds": seed_section(runs, instances, pairs, folder),
        "Verdict": verdict_section(runs, instances, pairs, folder),
        "Erasure faithfulness": faithfulness_section(tables),
        "Beside the published numbers": replication_section(runs, folder),
        "Counterfactual attention, model quality, timing": [
            markdown for name, markdown in tables.items() if name not in OWN_SECTION_TABLES
        ],
    }


def write_report(
    folder: Path, experiment: str, uri: str, runs: pd.DataFrame, sections: dict[str, list[str]]
) -> Path:
    """`report.md`: the trials' status, every section's tables or notes, and every other figure's PNG."""
    status = trial_status(runs)
    problems = status[status["status"] != "FINISHED"]
    lines = [
        f"# Sweep `{experiment}`",
        "",
        f"MLflow store: `{uri}`. {len(status)} trials in the grid, {len(status) - len(problems)} finished.",
        "",
        *(f"- `{row.trial}`: {row.status}" for row in problems.itertuples()),
        "",
    ]
    for title, parts in sections.items():
        lines += [f"## {title}", "", *parts]
    lines += [
        "## Figures",
        "",
        *(
            f"![{png.stem}](figures/{png.name})\n"
            for png in sorted((folder / "figures").glob("*.png"))
            if not png.stem.startswith("examples_")  # in their own section
        ),
    ]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path


def analyze(experiment: str, tracking_uri: str | None = None, out_dir: str | Path | None = None) -> Path:
    """Write the tables, figures and `report.md` of sweep `experiment` under `out_dir/<experiment>/`
    (default `outputs/analysis`) from its MLflow store (default: run_sweep's), and return that folder.
    Earlier `tables/` and `figures/` there are replaced. Raises `AnalysisError` (a ValueError)."""
    client = connect(tracking_uri)
    runs = fetch_runs(client, experiment)
    folder = Path(out_dir if out_dir is not None else default_out_dir()) / folder_name(experiment)
    for part in ("tables", "figures"):
        shutil.rmtree(folder / part, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    runs.to_csv(folder / "runs.csv", index=False)
    instances = fetch_instances(client, runs)
    tokens = fetch_tokens(client, runs)
    pairs = seed_pairs(tokens if several_seeds(runs) else tokens.iloc[:0])
    sections = write_tables(runs, instances, pairs, folder / "tables")
    settings = expected_settings(runs)
    write_figures(instances, settings, pairs, folder / "figures")
    write_faithfulness_figure(instances, settings, folder / "figures")
    _, sections[EXAMPLES_SECTION] = write_example_figures(instances, tokens, settings, folder / "figures")
    write_report(folder, experiment, client.tracking_uri, runs, sections)
    return folder
