"""The layers run one way, the registry is the one source of names, and checkpoints are plain data."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainables import registry
from trainables.model import ENCODER_CLASSES, AttentionClassifier
from trainables.settings import DATASETS, ENCODERS
from trainables.train import EarlyStopping, make_optimizer
from trainables.trial import CheckpointError, TrialState, load_state

ROOT = Path(__file__).resolve().parent.parent


def imported_packages(folder: str) -> dict[str, set[str]]:
    """Per module file of `folder`, the top-level packages it imports (anywhere in the file)."""
    found = {}
    for path in sorted((ROOT / folder).glob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[path.name] = names
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [("trainables", {"sweep", "analysis", "tests", "benchmarks"}), ("benchmarks", {"tests", "sweep"})],
)
def test_lower_layers_never_import_higher_ones(folder: str, forbidden: set[str]) -> None:
    offenders = {name: sorted(names & forbidden) for name, names in imported_packages(folder).items()}
    assert not {name: bad for name, bad in offenders.items() if bad}


def test_analysis_imports_only_trainables_and_the_light_sweep_helpers() -> None:
    allowed_sweep = {"sweep.tracking", "sweep.environment"}
    for path in sorted((ROOT / "analysis").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sweep":
                module = node.module if node.module != "sweep" else f"sweep.{node.names[0].name}"
                assert module in allowed_sweep, f"{path.name} imports {module}"


def python(code: str) -> str:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "RAY_"))}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    ).stdout


def test_validating_a_sweep_and_printing_help_import_no_torch() -> None:
    code = (
        "import sys, contextlib, io\n"
        "import sweep.config, run_sweep\n"
        "sweep.config.load_preset('paper')\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    run_sweep.main(['--help'])\n"
        "print('torch' in sys.modules, 'captum' in sys.modules)"
    )
    assert python(code).split() == ["False", "False"]


def test_importing_the_driver_and_the_analysis_sets_no_environment_variable() -> None:
    code = (
        "import os\nbefore = dict(os.environ)\n"
        "import sweep.runner, analysis, run_sweep\n"
        "from sweep.tracking import normalize_uri\nnormalize_uri('some/folder')\n"
        "changed = set(os.environ.items()) ^ set(before.items())\n"
        "print(sorted(name for name, _ in changed if not name.startswith('_MLFLOW')))"  # MLflow's session id
    )
    assert python(code).strip() == "[]"


def test_the_registry_names_agree_with_what_the_code_implements() -> None:
    assert set(ENCODER_CLASSES) == set(ENCODERS)
    from trainables.data import DATASET_SPECS

    assert set(DATASET_SPECS) == set(DATASETS)
    assert [pair.name for pair in registry.pairs()] == ["attn_grad", "attn_loo", "grad_loo"]
    assert registry.logged_pairs(["kendall/attn_ig/all/mean", "kendall_grad_loo", "other"]) == (
        registry.pairs(["integrated_gradients"])[2],
        registry.pairs(["integrated_gradients"])[3],
    )


def trained_state() -> TrialState:
    torch.manual_seed(0)
    model = AttentionClassifier(vocab_size=20, embed_dim=4, hidden_size=4)
    optimizer = make_optimizer(model, 1e-3, 0.0)
    logits, _ = model(torch.tensor([[3, 4, 5]]), torch.ones(1, 3, dtype=torch.bool))
    logits.sum().backward()
    optimizer.step()
    stopping = EarlyStopping(patience=3)
    stopping.update(0, 0.75, model)
    return TrialState(0, model.state_dict(), optimizer.state_dict(), stopping, train_seconds=1.5)


def test_a_checkpoint_is_plain_data_that_loads_with_weights_only(tmp_path: Path) -> None:
    state = trained_state()
    torch.save(state.to_checkpoint(), tmp_path / "state.pt")
    loaded = load_state(tmp_path / "state.pt")
    assert (loaded.epoch, loaded.train_seconds, loaded.done_training) == (0, 1.5, False)
    assert loaded.stopping.best_auc == 0.75 and loaded.stopping.patience == 3
    for name, tensor in state.model.items():
        assert torch.equal(loaded.model[name], tensor)
        assert torch.equal(loaded.stopping.best_state[name], state.stopping.best_state[name])
    assert loaded.optimizer["param_groups"] == state.optimizer["param_groups"]


def test_an_unreadable_checkpoint_is_one_clear_line(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pt"
    torch.save(trained_state().to_checkpoint(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    pickled_class = tmp_path / "pickled_class.pt"
    torch.save(trained_state(), pickled_class)  # the old format: a pickled TrialState object
    for path in (truncated, pickled_class, tmp_path / "missing.pt"):
        with pytest.raises(CheckpointError) as error:
            load_state(path)
        assert str(error.value).startswith(f"cannot read checkpoint {path}: ")
        assert "\n" not in str(error.value)
