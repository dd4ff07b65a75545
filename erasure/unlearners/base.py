"""The :class:`Unlearner` contract and the context it runs in.

``unlearn(model, ctx)`` receives a deep copy of the original model and returns
the unlearned model (it may modify and return the copy). Everything random must
come from ``ctx`` (``ctx.generator``, ``ctx.rng``) or the global RNGs, which the
runner reseeds per (seed, unlearner) before the call.

Losses on labels go through :func:`task_loss` (cross-entropy over classes, or binary
cross-entropy per label on multi-label data). A method that works on multi-label data says so
in ``tasks``; the runner refuses the others on such data before anything is trained.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from erasure.core.factory import instantiate
from erasure.core.registry import Component
from erasure.core.timing import Timing
from erasure.data.dataset import SINGLE_LABEL, TASKS  # noqa: F401  (TASKS: ``tasks`` of a method for both)
from erasure.data.partitions import Partitions
from erasure.models.training import TrainingRecipe, train_model
from erasure.models.training import task_loss  # noqa: F401  (re-exported: the loss unlearners use)


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
    log_fn: Callable[[int, dict[str, float]], None] = lambda step, metrics: None
    evaluation_partitions: Partitions | None = None
    timing_override: Timing | None = None
    extras: dict[str, Any] = field(default_factory=dict)

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

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Emit trajectory rows (metric values at ``step``, e.g. an epoch)."""
        self.log_fn(step, metrics)


class Unlearner(Component, kind="unlearner"):
    """Base of every unlearning method. Subclasses implement :meth:`unlearn`. ``uses_gold`` says the
    method reads the gold model (``ctx.reuse_gold`` / ``ctx.gold_provider``), so the plan trains it
    ahead; gold is trained on first use anyway. ``tasks`` lists the kinds of targets it handles
    ("single-label", "multi-label"; see :attr:`erasure.data.Dataset.task`)."""

    uses_gold: ClassVar[bool] = False
    tasks: ClassVar[tuple[str, ...]] = (SINGLE_LABEL,)
    #: Default search space of the tuning protocol: parameter name -> LogUniform / Uniform / IntRange /
    #: Choice (erasure.core.params), over the ranges its papers use and containing the defaults. A config
    #: overrides it per entry under "search"; an empty space is never tuned.
    search_space: ClassVar[dict[str, Any]] = {}

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        raise NotImplementedError


def build_optimizer(spec: dict | None, default: dict, params: Any, lr: float) -> torch.optim.Optimizer:
    """The method's optimizer: class and settings from ``spec`` (or the paper's ``default``), learning rate ``lr``."""
    spec = spec or default
    return instantiate(spec, "optimizer", params, lr=lr)


def build_scheduler(spec: dict | None, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The method's learning-rate scheduler (any ``torch.optim.lr_scheduler`` spec), or None for a constant rate.

    A method steps it once per epoch with :func:`step_scheduler`, e.g. SCRUB's small-scale decay
    ``{"class": "MultiStepLR", "parameters": {"milestones": [5, 8, 9], "gamma": 0.1}}``.
    """
    return instantiate(spec, "scheduler", optimizer=optimizer) if spec else None


def step_scheduler(scheduler: torch.optim.lr_scheduler.LRScheduler | None, loss: Tensor) -> None:
    """End-of-epoch step; ``ReduceLROnPlateau`` reads ``loss`` (the epoch's last training loss)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(float(loss))
    elif scheduler is not None:
        scheduler.step()


SGD_MOMENTUM = {"class": "SGD", "parameters": {"momentum": 0.9}}
