"""The :class:`Evaluator` contract and the :class:`Outcome` it judges.

An evaluator's class is thin: it pulls what it needs from the outcome and calls
a pure function (tested against a reference implementation) that computes the
metric. Outputs of the three models are memoised per (model, partition), so
evaluators share forward passes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal, Mapping

import torch
from torch import Tensor, nn

from erasure.core.registry import Component
from erasure.core.timing import Timing
from erasure.data.dataset import SINGLE_LABEL, TASKS  # noqa: F401  (TASKS: ``tasks`` of an evaluator for both)
from erasure.data.partitions import Partitions
from erasure.models.training import predict_logits, task_loss
from erasure.results.targets import Target

ModelName = Literal["unlearned", "original", "gold"]


class Undefined(float):
    """A metric value that is undefined here (NaN) and says why, e.g. ``Undefined("no forget_test
    samples")``; its row gets status ``undefined`` and the reason instead of ``ok``."""

    def __new__(cls, reason: str) -> "Undefined":
        value = super().__new__(cls, float("nan"))
        value.reason = reason
        return value


@dataclass
class Outcome:
    """One (seed, unlearner) job after ``unlearn``.

    ``partitions`` is the data as the unlearned model sees it (a feature
    unlearner may transform it); ``reference_partitions`` is the raw data that
    the original and gold models see.
    """

    model: nn.Module
    original: nn.Module
    # () -> (gold model, its training timing); gold is trained (or loaded) on first use only
    gold_provider: Callable[[], tuple[nn.Module, Timing]]
    partitions: Partitions
    reference_partitions: Partitions
    timing: Timing
    seed: int
    unlearner: str
    device: torch.device
    context: Any = None  # the UnlearningContext (new models, training recipe, generators)
    metrics: dict[str, float] = field(default_factory=dict)  # metrics computed so far for this job
    memo: dict[tuple, Any] = field(default_factory=dict)  # per-job memo (unlearned model)
    shared_memo: dict[tuple, Any] = field(default_factory=dict)  # per-seed memo (original, gold)
    # train_reference(tag, index, seed, recipe=None) -> a fresh model trained on the index tensor
    # with the original recipe (or ``recipe``), through the model cache: shadow and retrained models.
    train_reference: Callable[..., nn.Module] | None = None
    # unlearn_reference(seed, original_seed=None) -> the same unlearner run with the context of
    # ``seed`` on the original trained with ``original_seed`` (default ``seed``; the job's own seed
    # reuses the job's original), through the model cache: repeated unlearning for per-example attacks.
    unlearn_reference: Callable[..., nn.Module] | None = None
    # per-example arrays worth keeping (e.g. ForgettingQuality's per-example ε); the driver saves
    # each as artifacts/seed<seed>/<unlearner>/<name>.npy beside the results
    artifacts: dict[str, Any] = field(default_factory=dict)
    # rerun_unlearn() -> (model, context): the job's unlearn call once more, on a fresh copy of the
    # original under the job's seed (for counters that must watch the call, such as Flops)
    rerun_unlearn: Callable[[], tuple[nn.Module, Any]] | None = None

    @property
    def gold(self) -> nn.Module:
        """The gold model (retrained on D_r with the original's recipe and seed)."""
        return self.gold_provider()[0]

    @property
    def gold_timing(self) -> Timing:
        """How long gold took to train (where and how it was measured: see :class:`Timing`)."""
        return self.gold_provider()[1]

    def model_named(self, which: ModelName) -> nn.Module:
        if which == "gold":
            return self.gold
        return {"unlearned": self.model, "original": self.original}[which]

    def partitions_for(self, which: ModelName) -> Partitions:
        return self.partitions if which == "unlearned" else self.reference_partitions

    def logits(self, which: ModelName, partition: str) -> Tensor:
        """Logits of one of the three models on a partition, computed once."""
        memo = self.memo if which == "unlearned" else self.shared_memo
        key = ("logits", which, partition)
        if key not in memo:
            memo[key] = predict_logits(self.model_named(which), self.partitions_for(which), partition)
        return memo[key]

    def targets(self, partition: str) -> Tensor:
        return self.partitions.targets(partition)

    def losses(self, which: ModelName, partition: str) -> Tensor:
        """Per-sample loss of a model on a partition: cross-entropy, or on multi-label data the
        binary cross-entropy averaged over the labels (:func:`~erasure.models.training.task_loss`)."""
        return task_loss(self.logits(which, partition), self.targets(partition), reduction="none")


class Evaluator(Component, kind="evaluator"):
    """Base of every evaluation. ``requires`` names metrics (of other evaluators) this one reads;
    ``uses_gold`` says it reads the gold model (or its timing), so the plan trains gold ahead;
    ``metric_targets`` gives the target of every metric it produces (see erasure/results/targets.py);
    ``tasks`` the kinds of targets it handles ("single-label", "multi-label")."""

    requires: ClassVar[tuple[str, ...]] = ()
    uses_gold: ClassVar[bool] = False
    tasks: ClassVar[tuple[str, ...]] = (SINGLE_LABEL,)
    metric_targets: ClassVar[Mapping[str, Target]] = {}

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        raise NotImplementedError
