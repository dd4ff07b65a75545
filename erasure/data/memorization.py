"""Memorization forget sets (Zhao et al., "What makes unlearning hard and what to do about it",
NeurIPS 2024; kairanzhao/RUM): forget the most, least or median-memorized training samples.

Memorization proper (Feldman's leave-one-out estimate) needs thousands of trainings; RUM's cheap
proxies read the original's own training run (memorization_proxy/learning_events.py): per sample,
the true-class softmax confidence (or the correctness) averaged over the training epochs. A
sample the model fits late and unsurely is a memorized one. :func:`memorization_proxy` is that
proxy as a pure function of the history; the runner records the history
(:class:`~erasure.data.forget.OriginalProbe`), cached per seed.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from erasure.core.errors import ConfigError
from erasure.core.params import OpenFraction, PositiveInt
from erasure.data.dataset import Dataset
from erasure.data.forget import OriginalProbe, SizedForget

Level = Literal["high", "mid", "low"]
Proxy = Literal["confidence", "accuracy"]


def memorization_proxy(history: dict[str, Tensor], proxy: Proxy = "confidence") -> np.ndarray:
    """Per-sample memorization score from a training history (``(epochs, N)`` arrays): one minus
    the mean over epochs of the true-class confidence (``"confidence"``, RUM's ``confidence``
    proxy) or of the correctness (``"accuracy"``, RUM's ``bi_acc``). Higher is more memorized."""
    key = "confidence" if proxy == "confidence" else "correct"
    values = torch.as_tensor(history[key], dtype=torch.float64)
    return 1.0 - values.mean(0).cpu().numpy()


def select_by_level(scores: np.ndarray, count: int, level: Level) -> np.ndarray:
    """Positions of ``count`` samples at a memorization ``level``, as RUM's ``select_fs``
    (main_forget.py): order by score, highest first (ties in index order); "high" is the first
    ``count``, "low" the last ``count``, "mid" the ``count`` closest to the median (ties in the
    high-first order)."""
    order = np.argsort(-scores, kind="stable")
    if level == "high":
        return order[:count]
    if level == "low":
        return order[len(order) - count:]
    return order[np.argsort(np.abs(scores[order] - np.median(scores)), kind="stable")][:count]


class MemorizationForget(SizedForget):
    """Forget a ``fraction`` (or ``count``) of the training set at one memorization ``level``:
    "high" (the most memorized), "mid" (around the median) or "low", by RUM's ``proxy``
    (:func:`memorization_proxy`) over the original's training run (:func:`select_by_level`).

    The history costs one training of the original's recipe per seed, cached. Single-label data."""

    needs_original = True

    def __init__(self, level: Level = "high", fraction: OpenFraction | None = None, count: PositiveInt | None = None,
                 proxy: Proxy = "confidence"):
        self.level = level
        self.fraction = fraction
        self.count = count
        self.proxy = proxy

    def select(self, dataset: Dataset, train_idx: Tensor, rng: np.random.Generator,
               original: OriginalProbe | None = None) -> Tensor:
        if dataset.multi_label:
            raise ConfigError(f"memorization proxies need one class per sample, but {dataset.name} is multi-label", "")
        scores = memorization_proxy(original.training_history(train_idx), self.proxy)
        chosen = select_by_level(scores, self.count_of(len(train_idx)), self.level)
        return torch.sort(train_idx[torch.as_tensor(chosen, device=train_idx.device)]).values
