"""A finished sweep's papers' tables and figures, read from its MLflow store without recomputing anything.

python -m analysis --experiment NAME [--tracking-uri URI] [--out DIR]

In a notebook: `load_runs` (a row per trial: axes, status, every logged metric), `load_instances` (the
per-instance artifacts with the trial's axes), `analyze` (write everything, return the folder).
"""

from analysis.load import AnalysisError, load_instances, load_runs
from analysis.report import analyze

__all__ = ["AnalysisError", "analyze", "load_instances", "load_runs"]
