"""Worst-case forget sets (Fan et al., "Challenging forgets: unveiling the worst-case forget sets
in machine unlearning", ECCV 2024; OPTML-Group/Unlearn-WorstCase, data-wise/): the samples that
an unlearner finds hardest to forget, i.e. whose loss stays lowest.

The reference solves a bi-level problem: the upper level moves a selection weight
w ∈ [0, 1]^N with Σw = k against the per-sample loss of the model that the lower level unlearned
(``optimize_select`` in unlearn/impl.py: w ← w − lr·(ℓ + 2γw), then ``utils.bisection`` projects
back onto the constraint), ``select_epochs`` times, starting from a random binary w, and keeps
the top-k of w. Here the lower level is held at the original model (it would need an unlearner
inside the data layer), so ℓ is the original's loss: ``method`` "bilevel" runs exactly those
upper-level steps, and "lowest_loss" (the default) takes their fixed point, the k samples of
lowest loss under the original.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from erasure.core.errors import ConfigError
from erasure.core.params import NonNegativeFloat, OpenFraction, PositiveFloat, PositiveInt
from erasure.data.dataset import Dataset
from erasure.data.forget import OriginalProbe, SizedForget


def bisection(a: Tensor, total: float, xi: float = 1e-5, upper: float = 1.0, max_iter: int = 100) -> Tensor:
    """Projection of ``a`` onto {w ∈ [0, upper]^N : Σw = total}: clamp(a − μ, 0, upper) with μ found
    by bisection to tolerance ``xi`` (the reference's ``utils.bisection``, same stopping rules)."""
    low, high = a.min() - 1, a.max()
    mu = (high + low) / 2
    for _ in range(max_iter + 1):
        if abs(high - low) <= xi:
            break
        mu = (high + low) / 2
        gap = torch.clamp(a - mu, 0, upper).sum() - total
        gap_low = torch.clamp(a - low, 0, upper).sum() - total
        if gap == 0:
            break
        if torch.sign(gap) == torch.sign(gap_low):
            low = mu
        else:
            high = mu
    return torch.clamp(a - mu, 0, upper)


def worst_case_weights(losses: Tensor, start: Tensor, count: int, epochs: int = 10, lr: float = 0.01,
                       gamma: float = 0.0) -> Tensor:
    """The upper level of the worst-case selection with the lower level fixed: ``epochs`` projected
    steps w ← bisection(w − lr·(ℓ + 2γw), count) from ``start`` (float64, as the reference)."""
    w, losses = start.double(), losses.double()
    for _ in range(epochs):
        w = bisection(w - lr * (losses + gamma * 2 * w), count)
    return w


class WorstCaseForget(SizedForget):
    """Forget the ``fraction`` (or ``count``) of the training set that is hardest to forget
    (see the module): ``method`` "lowest_loss" takes the samples of lowest cross-entropy under
    the original; "bilevel" runs the reference's upper-level steps (``epochs``, ``lr``, ``gamma``,
    from a random selection drawn with the seed) and keeps the top of the weights."""

    needs_original = True

    def __init__(self, fraction: OpenFraction | None = None, count: PositiveInt | None = None,
                 method: Literal["lowest_loss", "bilevel"] = "lowest_loss", epochs: PositiveInt = 10,
                 lr: PositiveFloat = 0.01, gamma: NonNegativeFloat = 0.0):
        self.fraction = fraction
        self.count = count
        self.method = method
        self.epochs = epochs
        self.lr = lr
        self.gamma = gamma

    def select(self, dataset: Dataset, train_idx: Tensor, rng: np.random.Generator,
               original: OriginalProbe | None = None) -> Tensor:
        if dataset.multi_label:
            raise ConfigError(f"the worst-case selection ranks by cross-entropy, but {dataset.name} is multi-label", "")
        count = self.count_of(len(train_idx))
        logits = original.logits(train_idx)
        losses = torch.nn.functional.cross_entropy(logits, dataset.targets[train_idx], reduction="none").cpu()
        if self.method == "lowest_loss":
            chosen = torch.argsort(losses, stable=True)[:count]
        else:
            start = torch.zeros(len(train_idx), dtype=torch.float64)
            start[torch.as_tensor(rng.choice(len(train_idx), size=count, replace=False))] = 1
            chosen = torch.topk(worst_case_weights(losses, start, count, self.epochs, self.lr, self.gamma), count).indices
        return torch.sort(train_idx[chosen.to(train_idx.device)]).values
