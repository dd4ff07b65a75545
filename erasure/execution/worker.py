"""What a worker process runs on: :class:`WorkerSetup`, the plain data a pool or Ray worker gets
from the driver, and :func:`workspace_from_setup`, the workspace it builds from it (the same config
as the driver's). Executors import this module; it imports nothing of theirs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from erasure.core.cache import ModelCache
from erasure.execution.experiment import build_experiment
from erasure.execution.workspace import Workspace


@dataclass
class WorkerSetup:
    """What a worker process needs to build its workspace: plain data only (the config is JSON)."""

    config: dict[str, Any]
    file: str
    device: str
    cache_dir: str | None
    cache_enabled: bool
    run_id: str
    threads: int
    sys_path: list[str] = field(default_factory=list)
    holdout: float | None = None  # tuning: the validation view of the data (see Experiment.holdout)


def workspace_from_setup(setup: WorkerSetup) -> Workspace:
    """A worker's workspace, built from the same config as the driver's."""
    torch.set_num_threads(setup.threads)
    experiment = build_experiment(setup.config, check_output=False)
    experiment.file = setup.file
    experiment.holdout = setup.holdout
    return Workspace(experiment, device=torch.device(setup.device),
                     cache=ModelCache(setup.cache_dir, enabled=setup.cache_enabled), run_id=setup.run_id)
