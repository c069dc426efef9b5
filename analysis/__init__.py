"""A finished sweep's papers' tables and figures, read from its MLflow store without recomputing anything.

python -m analysis --experiment NAME [--tracking-uri URI] [--out DIR]

In a notebook: `load_runs` (a row per trial: axes, status, params, every logged metric), `load_instances`
and `load_tokens` (the per-instance and per-token artifacts with the trial's axes), `analyze` (write
everything, return the folder).
"""

from analysis.load import AnalysisError, load_instances, load_runs, load_tokens
from analysis.report import analyze

__all__ = ["AnalysisError", "analyze", "load_instances", "load_runs", "load_tokens"]
