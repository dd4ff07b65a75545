"""Shared fixtures: a tiny experiment that every component can run on in well under a second."""
from __future__ import annotations

import copy
import functools
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent / "plugins"))

from erasure.testing.contract import TINY_CONFIG, tiny_config  # noqa: E402,F401  (the contract test's tiny world)


def make_runner(config: dict[str, Any], **options: Any):
    """Build an experiment from a config dict and a quiet runner (the driver) for it."""
    from erasure.execution.experiment import build_experiment
    from erasure.execution.runner import Runner
    from erasure.tuning.protocol import tune

    options.setdefault("use_cache", False)
    options.setdefault("tuner", tune)
    return Runner(build_experiment(copy.deepcopy(config)), progress=False, out=lambda *_: None, **options)


@functools.lru_cache(maxsize=None)
def trained_digits(forget: str = "class") -> tuple:
    """Digits with the digit 3 (``"class"``) or a random 10 % (``"random"``) forgotten, and a small
    MLP trained on them (3 epochs): the fidelity tests' shared toy world (cached; copy the model)."""
    from erasure.data.forget import ClassForget, RandomForget
    from erasure.data.partitions import Split, make_partitions
    from erasure.data.sources.sklearn import SklearnDigits
    from erasure.models.training import TrainingRecipe, train_model
    from erasure.models.zoo import MLP

    spec = ClassForget([3]) if forget == "class" else RandomForget(fraction=0.1)
    parts = make_partitions(SklearnDigits().load(), Split(), spec, 0)
    torch.manual_seed(0)
    model = MLP((1, 8, 8), 10, hidden=[32, 16])
    train_model(model, parts, "train", TrainingRecipe(epochs=3, batch_size=64), torch.Generator().manual_seed(0))
    return parts, model.eval()


def make_workspace(config: dict[str, Any], **options: Any):
    """The in-process workspace of a config: its seeds' data and reference models, and its jobs."""
    return make_runner(config, **options).workspace


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory):
    """(workspace, seed state) with the original and gold models trained, shared by the whole session."""
    workspace = make_workspace(tiny_config(tmp_path_factory.mktemp("tiny")))
    state = workspace.prepare_seeds()[0]
    workspace.train_references(state)
    return workspace, state


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tests that call components directly run them as every job runs: with one torch thread
    (execution.cpus_per_job's default), which tiny models train fastest with, also on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
