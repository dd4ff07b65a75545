"""MIRegularized: data-point unlearning with a mutual-information penalty (Xu & Strohmer)."""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from erasure.core.errors import ConfigError
from erasure.core.params import (IntRange, LogUniform, MethodOptimizerSpec, NonNegativeFloat, PositiveFloat,
                                 PositiveInt, Uniform)
from erasure.evaluators.mutual_information import soft_mutual_information_from_logits
from erasure.models.training import accuracy, predict_logits
from erasure.unlearners.base import TrainingUnlearner, UnlearningContext, build_optimizer

ADAM = {"class": "Adam"}

StopRule = Literal["gold_accuracy", "forget_accuracy", "mutual_information"]


def trajectory_metrics(model: nn.Module, ctx: UnlearningContext) -> dict[str, float]:
    """The per-epoch trajectory: Î on the whole forget/retain sets and accuracy on retain, forget, test."""
    parts = ctx.partitions
    retain_logits = predict_logits(model, parts, "retain")
    forget_logits = predict_logits(model, parts, "forget")
    return {
        "mutual_information": float(soft_mutual_information_from_logits(retain_logits, forget_logits)),
        "accuracy_retain": float((retain_logits.argmax(1) == parts.targets("retain")).float().mean()),
        "accuracy_forget": float((forget_logits.argmax(1) == parts.targets("forget")).float().mean()),
        "accuracy_test": accuracy(model, parts, "test"),
    }


class MIRegularized(TrainingUnlearner):
    """Xu & Strohmer, "Machine Unlearning via Information Theoretic Regularization" (arXiv 2502.05684;
    reference code xushizhou/Machine_Unlearn_via_Info_Reg, Data_Unlearning_MNIST_Plot.py).

    Each step takes a remain batch B_r (``remain_batch_size``, 64) and an unlearn
    batch B_u (``unlearn_batch_size``, 16) and minimises
    CE(f(B_r), y_r) + γ·Î(Ŷ;Z), Î the soft plug-in estimate of
    :func:`~erasure.evaluators.mutual_information.soft_mutual_information`
    (Z=0: B_r ∪ B_u, Z=1: B_r again). One epoch is one pass of
    zip(remain batches, unlearn batches), so it ends with the shorter of the two.
    Optimizer: a fresh Adam at lr 1e-3 (the paper's); ``optimizer`` picks another
    class, ``lr`` stays its own parameter. Paper settings: γ in {1.5, 3.5, 5},
    epochs 2..20.

    ``stop`` (checked before the first epoch and after each one):

    * ``"gold_accuracy"``: stop once accuracy on the forget set is at or below the
      gold (retrained) model's, read through ``ctx.gold_provider`` (the job keeps
      its own run time);
    * ``"forget_accuracy"``: stop once forget accuracy is at or below ``stop_threshold``;
    * ``"mutual_information"``: stop once Î on the whole forget/retain sets (the
      ``mutual_information`` trajectory value, with the current weights) is at or
      below ``stop_threshold``; the per-batch training estimate is not read.

    With ``trajectory`` on, it logs step 0 (before unlearning) and one step per
    epoch through ``ctx.log``: ``mutual_information`` (Î on the whole forget and
    retain sets after the epoch, nats), ``mutual_information_batches`` (from step 1:
    the mean over the epoch's steps of the per-batch Î in the loss, before each
    update, which is what the reference script's figures plot as "Mutual Information"),
    ``accuracy_retain`` (remain), ``accuracy_forget`` (unlearn) and ``accuracy_test``.
    """

    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"gamma": Uniform(0.5, 5.0), "epochs": IntRange(1, 20), "lr": LogUniform(1e-4, 1e-2)}

    def __init__(self, gamma: NonNegativeFloat = 1.5, epochs: PositiveInt = 20, lr: PositiveFloat = 1e-3,
                 remain_batch_size: PositiveInt = 64, unlearn_batch_size: PositiveInt = 16,
                 optimizer: MethodOptimizerSpec | None = None, stop: StopRule | None = None,
                 stop_threshold: NonNegativeFloat | None = None, trajectory: bool = True):
        self.gamma = gamma
        self.epochs = epochs
        self.lr = lr
        self.remain_batch_size = remain_batch_size
        self.unlearn_batch_size = unlearn_batch_size
        self.optimizer = optimizer
        self.stop = stop
        self.stop_threshold = stop_threshold
        self.trajectory = trajectory

    @property
    def uses_gold(self) -> bool:  # type: ignore[override]
        """The ``gold_accuracy`` stop rule and the gold-based ``select`` rules read the gold model."""
        return self.stop == "gold_accuracy" or super().uses_gold

    def check(self) -> None:
        needs_threshold = self.stop in ("forget_accuracy", "mutual_information")
        if needs_threshold and self.stop_threshold is None:
            raise ConfigError(f"stop {self.stop!r} needs a 'stop_threshold'", "stop_threshold")
        if not needs_threshold and self.stop_threshold is not None:
            raise ConfigError(f"'stop_threshold' is only used with stop 'forget_accuracy' or 'mutual_information' "
                              f"(stop is {self.stop!r})", "stop_threshold")

    def _target(self, ctx: UnlearningContext) -> float | None:
        if self.stop == "gold_accuracy":
            gold, _ = ctx.gold_provider()  # not reuse_gold: that would report gold's cost as ours
            return accuracy(gold, ctx.partitions, "forget")
        return self.stop_threshold

    def _should_stop(self, metrics: dict[str, float], target: float | None) -> bool:
        if self.stop is None:
            return False
        value = metrics["mutual_information" if self.stop == "mutual_information" else "accuracy_forget"]
        return value <= target

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        optimizer = build_optimizer(self.optimizer, ADAM, model.parameters(), self.lr)
        target = self._target(ctx)
        watch = self.trajectory or self.stop is not None
        batch_estimate: dict[str, float] = {}
        for epoch in range(self.epochs + 1):
            if watch:
                metrics = {**trajectory_metrics(model, ctx), **batch_estimate}
                if self.trajectory:
                    ctx.log(epoch, metrics)
                if self._should_stop(metrics, target):
                    break
            if epoch == self.epochs:
                break
            batch_estimate = {"mutual_information_batches": self._epoch(model, optimizer, ctx)}
            ctx.end_epoch(model)
        return model.eval()

    def _epoch(self, model: nn.Module, optimizer: torch.optim.Optimizer, ctx: UnlearningContext) -> float:
        """One pass of zip(remain, unlearn) batches; returns the mean of the per-batch Î in the loss."""
        model.train()
        total, steps = 0.0, 0
        remain = ctx.batches("retain", self.remain_batch_size)
        unlearn = ctx.batches("forget", self.unlearn_batch_size)
        for (xr, yr), (xu, _) in zip(remain, unlearn):
            optimizer.zero_grad(set_to_none=True)
            if isinstance(xr, torch.Tensor):  # one forward pass over both batches
                logits = model(torch.cat([xr, xu]))
                remain_logits, unlearn_logits = logits[: len(yr)], logits[len(yr):]
            else:  # graph batches do not concatenate
                remain_logits, unlearn_logits = model(xr), model(xu)
            information = soft_mutual_information_from_logits(remain_logits, unlearn_logits)
            (nn.functional.cross_entropy(remain_logits, yr) + self.gamma * information).backward()
            optimizer.step()
            total, steps = total + float(information.detach()), steps + 1
        return total / max(steps, 1)
