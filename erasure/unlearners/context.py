"""What an unlearner may use: :class:`UnlearningContext` (the partitions on the device, the
original recipe, seeded generators, the gold model on request, logging and the epoch hook). It lives
below :mod:`erasure.unlearners.base` so that the options and helpers the base builds on can name it."""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from erasure.core.seeding import derive_seed, seed_everything
from erasure.core.timing import Timing
from erasure.data.partitions import Partitions
from erasure.models.training import TrainingRecipe, train_model


@dataclass
class UnlearningContext:
    """What an unlearner may use. ``partitions`` live on ``device``."""

    partitions: Partitions
    device: torch.device
    num_classes: int
    recipe: TrainingRecipe
    seed: int
    generator: torch.Generator
    rng: np.random.Generator
    new_model: Callable[[], nn.Module]
    gold_provider: Callable[[], tuple[nn.Module, Timing]]
    log_fn: Callable[[int | None, dict[str, float]], None] = lambda step, metrics: None
    evaluation_partitions: Partitions | None = None
    timing_override: Timing | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    #: Gradient masks by name ({parameter name: bool tensor}); a ``SaliencyMask`` step leaves one
    #: here and the later steps of the same ``Cascade`` (which share this dict) apply it by name.
    masks: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    #: Where this job may write files (``output.dir/files/seed<seed>/<label>``); None: nowhere.
    output_dir: Path | None = None
    #: Called by :meth:`end_epoch`; set while a ``select`` option is in force.
    on_epoch: Callable[[nn.Module], None] | None = None

    def batches(self, partition: str | Tensor, batch_size: int | None = None, shuffle: bool = True) -> Iterator[tuple[Any, Tensor]]:
        """Seeded batches of a partition; the batch size defaults to the original recipe's."""
        return self.partitions.batches(partition, batch_size or self.recipe.batch_size, shuffle, self.generator)

    def train(self, model: nn.Module, partition: str | Tensor, recipe: TrainingRecipe | None = None) -> nn.Module:
        """Train ``model`` on a partition with the original's recipe (or ``recipe``)."""
        return train_model(model, self.partitions, partition, recipe or self.recipe, self.generator)

    def frozen_copy(self, model: nn.Module) -> nn.Module:
        """An independent deep copy in eval mode with gradients off (a teacher never shares weights)."""
        teacher = copy.deepcopy(model)
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    def reuse_gold(self) -> nn.Module:
        """A copy of the per-seed gold model; this job then reports gold's training cost as its own."""
        gold, timing = self.gold_provider()
        self.timing_override = timing
        return copy.deepcopy(gold)

    def log(self, step: int | None, metrics: dict[str, float]) -> None:
        """Emit trajectory rows (metric values at ``step``, e.g. an epoch); ``step`` None gives
        rows without a step, which summaries show beside the evaluators' metrics."""
        self.log_fn(step, metrics)

    def end_epoch(self, model: nn.Module) -> None:
        """Training loops call this after every epoch: with a ``select`` option it measures the
        model and remembers the epoch if the rule prefers it; otherwise it does nothing."""
        if self.on_epoch is not None:
            self.on_epoch(model)

    def for_step(self, index: int) -> "UnlearningContext":
        """The context of step ``index`` of a composition (:class:`~erasure.unlearners.cascade.Cascade`):
        reseeded (generator, ``rng`` and the global RNGs) from ``derive_seed(seed, f"step {index}")``;
        the same partitions, models, masks and extras; its log rows named ``step<index>_<metric>``."""
        seed = derive_seed(self.seed, f"step {index}")
        return dataclasses.replace(
            self, seed=seed, generator=seed_everything(seed), rng=np.random.default_rng(seed),
            log_fn=lambda step, metrics: self.log(step, {f"step{index}_{k}": v for k, v in metrics.items()}),
            evaluation_partitions=None, timing_override=None, on_epoch=None)
