"""Run an ane-sweep sweep: every grid point of a preset or YAML file as one Ray Tune trial, logged to MLflow.

python run_sweep.py                                   # the `sst` preset on a local Ray instance
python run_sweep.py --preset smoke --data-dir ../shared/datasets
python run_sweep.py --config my_sweep.yaml --seeds 1,2,3 --max-concurrent 4
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn

from sweep.config import ConfigError, load_config, load_preset, preset_names, with_overrides
from sweep.runner import DEFAULT_OUTPUT_DIR, SweepOptions, resume_sweep, run_sweep
from sweep.summary import tally
from sweep.tracking import TrackingError, store_scheme
from trainables.embeddings import EmbeddingError
from trainables.pretrained import PretrainedError
from trainables.settings import DataError

DEFAULT_PRESET = "sst"


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers, got {text!r}") from None


def describe_embeddings(info: dict[str, Any]) -> str:
    """One line on the sweep's initial word vectors: where from, how many, trained or loaded, how long."""
    if info["source"] == "random":
        return "random initialisation"
    how = "loaded from the cache" if info["cached"] else "built"
    key = f" (key {info['key']})" if info["key"] else ""
    return f"{info['source']}{key}: {info['words']} words, {how} in {info['seconds']:.1f} s"


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line like every other input error (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="run_sweep.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--preset",
        help=f"a preset from sweep/presets: {', '.join(preset_names())} (default: {DEFAULT_PRESET})",
    )
    source.add_argument("--config", type=Path, help="a sweep YAML file (same format as the presets)")
    source.add_argument(
        "--resume",
        metavar="NAME",
        help="continue experiment NAME after a crash or Ctrl-C: finished trials are kept, "
        "unfinished ones continue from their last checkpoint, in their MLflow runs",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="read <DIR>/<dataset>/<split>.csv (columns text,label) instead of the Hugging Face Hub",
    )
    parser.add_argument(
        "--name", help="experiment name for Ray's results folder and MLflow (default: the preset's)"
    )
    parser.add_argument(
        "--tracking-uri",
        help="MLflow store: sqlite:///abs/path.db, a folder, or http://host:port "
        "(default: sqlite under --output-dir)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        help=f"local outputs: MLflow database and artifacts, Ray results (default: {DEFAULT_OUTPUT_DIR})",
    )
    parser.add_argument("--storage-path", help="Ray Tune results (absolute path or s3:// / gs:// URI)")
    parser.add_argument(
        "--address", help="an existing Ray cluster ('auto' on a cluster head); default: start locally"
    )
    parser.add_argument("--max-concurrent", type=int, help="trials running at once")
    parser.add_argument("--seeds", help="comma-separated seeds replacing the grid's, e.g. 1,2,3")
    parser.add_argument("--max-epochs", type=int, help="upper limit on training epochs")
    parser.add_argument("--cpus-per-trial", type=float, help="CPUs each trial requests")
    parser.add_argument(
        "--gpus-per-trial", type=float, help="GPUs each trial requests (fractions share a GPU)"
    )
    parser.add_argument(
        "--shared-storage",
        action="store_true",
        default=None,
        help="--storage-path is a mount every node of the cluster shares (NFS, EFS)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing experiment of the same name"
    )
    parser.add_argument(
        "--ray-output",
        action="store_true",
        help="also print Ray Tune's own status tables and per-trial result dumps",
    )
    parser.add_argument(
        "--no-analysis",
        action="store_true",
        help="skip writing tables and figures (python -m analysis) after the sweep",
    )
    return parser


def where_to_compare(tracking_uri: str) -> str:
    """A tracking server's own UI (on a cluster, through an SSH tunnel), else the command that serves one
    for the store."""
    if store_scheme(tracking_uri) in ("http", "https"):
        return f"{tracking_uri} (the tracking server's UI)"
    return f"{mlflow_ui_command(tracking_uri)}   (then open http://127.0.0.1:5000)"


def mlflow_ui_command(tracking_uri: str) -> str:
    """The MLflow UI command for this store, with the `mlflow` of this interpreter (the venv's after
    `make sweep`), served on loopback only."""
    mlflow = Path(sys.executable).with_name("mlflow")
    program = shlex.quote(os.path.relpath(mlflow)) if mlflow.exists() else "mlflow"
    return f"{program} ui --backend-store-uri {shlex.quote(tracking_uri)} --host 127.0.0.1"


def resume_command(name: str, args: argparse.Namespace) -> str:
    """`python run_sweep.py --resume NAME` with the options that say where the sweep's saved state is and
    which cluster ran it (the MLflow store and data folder are saved with the sweep)."""
    where = {"--output-dir": args.output_dir, "--storage-path": args.storage_path, "--address": args.address}
    given = [f"{flag} {shlex.quote(str(value))}" for flag, value in where.items() if value is not None]
    return " ".join(["python run_sweep.py --resume", shlex.quote(name), *given])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {
        "name": args.name,
        "seeds": args.seeds,  # parsed below, so a bad value gets the one-line error of the rest
        "max_epochs": args.max_epochs,
        "max_concurrent": args.max_concurrent,
        "cpus_per_trial": args.cpus_per_trial,
        "gpus_per_trial": args.gpus_per_trial,
    }
    options = SweepOptions(
        data_dir=args.data_dir,
        tracking_uri=args.tracking_uri,
        output_dir=args.output_dir.resolve(),
        storage_path=args.storage_path,
        address=args.address,
        overwrite=args.overwrite,
        shared_storage=args.shared_storage,
        ray_output=args.ray_output,
    )
    try:
        if args.resume:
            given = [f"--{k.replace('_', '-')}" for k, v in overrides.items() if v is not None]
            if given or args.overwrite:
                raise ConfigError(
                    f"--resume continues the saved sweep as it was; drop {' '.join(given) or '--overwrite'}"
                )
            result = resume_sweep(args.resume, options)
        else:
            if args.seeds is not None:
                overrides["seeds"] = parse_seeds(args.seeds)
            config = load_config(args.config) if args.config else load_preset(args.preset or DEFAULT_PRESET)
            result = run_sweep(with_overrides(config, **overrides), options)
    except (ConfigError, DataError, EmbeddingError, PretrainedError, TrackingError) as error:
        parser.error(str(error))
    print(f"\nSweep {result.name!r}: {tally(result.summary)}")
    print(f"Word vectors: {describe_embeddings(result.embeddings)}")
    print(result.summary.to_string(index=False))
    print(f"\nRay results: {result.experiment_dir}")
    print(f"Compare the runs: {where_to_compare(result.tracking_uri)}")
    if (result.summary["status"] == "UNFINISHED").any():
        print(f"Continue the unfinished trials: {resume_command(result.name, args)}")
    if not args.no_analysis and result.failed < len(result.summary):
        from analysis import AnalysisError, analyze

        try:
            folder = analyze(result.name, result.tracking_uri, options.output_dir / "analysis")
            print(f"Tables and figures: {folder} (start with {folder / 'report.md'})")
        except AnalysisError as error:
            print(f"analysis skipped: {error}", file=sys.stderr)
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
