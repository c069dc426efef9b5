"""python -m analysis --experiment NAME [--tracking-uri URI] [--out DIR]: a sweep's tables and figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.load import AnalysisError
from analysis.report import analyze


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Write the papers' tables (CSV, Markdown, LaTeX) and figures (PNG, SVG, PDF) of a "
        "finished sweep from its MLflow runs, into OUT/EXPERIMENT/.",
    )
    parser.add_argument("--experiment", required=True, help="the MLflow experiment: the sweep's name")
    parser.add_argument(
        "--tracking-uri",
        help="MLflow store: sqlite:///abs/path.db, a folder, or http://host:port "
        "(default: run_sweep.py's, sqlite under outputs/)",
    )
    parser.add_argument("--out", type=Path, help="output folder (default: outputs/analysis)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        folder = analyze(args.experiment, args.tracking_uri, args.out)
    except AnalysisError as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        parser.exit(2, f"{parser.prog}: error: {message}\n")
    print(f"Tables and figures of {args.experiment!r}: {folder}")
    print(f"Start with {folder / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
