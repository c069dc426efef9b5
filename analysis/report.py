"""`analyze`: a finished sweep's tables and figures, straight from its MLflow store, into one folder."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd

from analysis.aggregate import axis_values, expected_settings, trial_status
from analysis.figures import write_figures
from analysis.load import connect, fetch_instances, fetch_runs
from analysis.markup import to_latex, to_markdown
from analysis.replication import comparison, comparison_text
from analysis.tables import MISSING, TABLES, build
from sweep.tracking import DEFAULT_OUTPUT_DIR


def default_out_dir() -> Path:
    """`outputs/analysis` beside run_sweep's outputs."""
    return DEFAULT_OUTPUT_DIR / "analysis"


def folder_name(experiment: str) -> str:
    """The experiment name as one safe path component."""
    return re.sub(r"[^\w.-]+", "_", experiment).strip(".") or "experiment"


def caption_note(runs: pd.DataFrame) -> str:
    """What the cells mean beyond the table's own caption: seeds, and the missing mark."""
    seeds = axis_values(runs)["seed"]
    note = f" {MISSING} marks a setting with no finished trial."
    if len(seeds) > 1:
        note = (
            f" Each cell is the mean over seeds (± the mean within-trial std where there is one), with the "
            f"std across seeds and the number n of the {len(seeds)} seeds that finished." + note
        )
    return note


def write_tables(runs: pd.DataFrame, folder: Path) -> dict[str, str]:
    """Each table as `<name>.csv` (numbers), `.md` and `.tex` (text); returns the Markdown by name."""
    folder.mkdir(parents=True, exist_ok=True)
    markdown = {}
    for make in TABLES:
        spec = make(runs)
        if not spec.cells:
            continue
        long, wide = build(spec, runs)
        caption = spec.caption + caption_note(runs)
        long.to_csv(folder / f"{spec.name}.csv", index=False)
        markdown[spec.name] = to_markdown(wide, caption)
        (folder / f"{spec.name}.md").write_text(markdown[spec.name])
        (folder / f"{spec.name}.tex").write_text(to_latex(wide, caption, spec.name))
    published = comparison(runs)
    if not published.empty:
        caption = (
            "Our results beside the published ones (mean ± std over test instances; ours also across seeds); "
            "difference = ours − published. Sources: analysis/reference/README.md."
        )
        published.to_csv(folder / "replication.csv", index=False)
        wide = comparison_text(published)
        markdown["replication"] = to_markdown(wide, caption)
        (folder / "replication.md").write_text(markdown["replication"])
        (folder / "replication.tex").write_text(to_latex(wide, caption, "replication"))
    return markdown


def write_report(folder: Path, experiment: str, uri: str, runs: pd.DataFrame, tables: dict[str, str]) -> Path:
    """`report.md`: the trials' status, every table, and every figure's PNG, for reading in one place."""
    status = trial_status(runs)
    problems = status[status["status"] != "FINISHED"]
    lines = [
        f"# Sweep `{experiment}`",
        "",
        f"MLflow store: `{uri}`. {len(status)} trials in the grid, {len(status) - len(problems)} finished.",
        "",
        *(f"- `{row.trial}`: {row.status}" for row in problems.itertuples()),
        "",
        "## Tables",
        "",
        *tables.values(),
        "## Figures",
        "",
        *(f"![{png.stem}](figures/{png.name})\n" for png in sorted((folder / "figures").glob("*.png"))),
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
    tables = write_tables(runs, folder / "tables")
    write_figures(fetch_instances(client, runs), expected_settings(runs), folder / "figures")
    write_report(folder, experiment, client.tracking_uri, runs, tables)
    return folder
