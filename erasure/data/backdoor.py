"""Backdoor forget sets (the poisoned-data setting of kairanzhao/RUM main_backdoor.py, after
SalUn's): a random share of the training samples carries a trigger and the target label, so the
original learns "trigger ⇒ target"; retraining without them removes the backdoor, and an
unlearner should too (evaluator ``BackdoorSuccess``)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from erasure.core.errors import ConfigError
from erasure.core.params import NonNegativeInt, OpenFraction, PositiveInt
from erasure.data.dataset import Dataset
from erasure.data.forget import SizedForget


def add_trigger(inputs: Tensor, size: int, value: float) -> Tensor:
    """A copy of ``inputs`` with the trigger: the reference's ``size`` × ``size`` patch ending two
    pixels from the bottom-right corner (``[-2-size:-2, -2-size:-2]`` of the last two dimensions)
    set to ``value``; on one-dimensional samples (tabular rows) the ``size`` features ending two
    before the last."""
    out = inputs.clone()
    if out.dim() >= 3:
        out[..., -2 - size:-2, -2 - size:-2] = value
    else:
        out[..., -2 - size:-2] = value
    return out


class BackdoorForget(SizedForget):
    """Forget a random ``fraction`` (or ``count``) of the training set that carries a backdoor:
    each of those samples gets the trigger (:func:`add_trigger` with ``trigger_size`` and ``value``; the
    reference zeroes a 4 × 4 patch) and the label ``target``. The original trains on the poisoned
    data; gold, trained on the clean rest, has no backdoor. Tensor inputs, single-label data."""

    def __init__(self, target: NonNegativeInt = 0, fraction: OpenFraction | None = None, count: PositiveInt | None = None,
                 trigger_size: PositiveInt = 4, value: float = 0.0):
        self.target = target
        self.fraction = fraction
        self.count = count
        self.trigger_size = trigger_size
        self.value = value

    def trigger(self, inputs: Tensor) -> Tensor:
        """``inputs`` with this spec's trigger (for the evaluator's triggered test inputs)."""
        return add_trigger(inputs, self.trigger_size, self.value)

    def _check_data(self, dataset: Dataset) -> None:
        if dataset.kind != "tensor" or dataset.multi_label:
            raise ConfigError(f"a backdoor needs tensor inputs and one class per sample ({dataset.name} is "
                              f"{dataset.kind}, {dataset.task})", "")
        if self.target >= dataset.num_classes:
            raise ConfigError(f"target {self.target} is not a class of {dataset.name} ({dataset.num_classes} classes)",
                              "target")
        room = min(dataset.input_shape[-2:]) if len(dataset.input_shape) >= 2 else dataset.input_shape[-1]
        if self.trigger_size + 2 > room:
            raise ConfigError(f"a trigger of size {self.trigger_size} two from the edge does not fit inputs of shape "
                              f"{list(dataset.input_shape)}", "trigger_size")

    def select(self, dataset: Dataset, train_idx: Tensor, rng: np.random.Generator) -> Tensor:
        self._check_data(dataset)
        count = self.count_of(len(train_idx))
        chosen = np.sort(rng.choice(len(train_idx), size=count, replace=False))
        return train_idx[torch.as_tensor(chosen, device=train_idx.device)]

    def modify_data(self, dataset: Dataset, forget_idx: Tensor) -> Dataset:
        inputs, targets = dataset.inputs.clone(), dataset.targets.clone()
        inputs[forget_idx] = self.trigger(inputs[forget_idx])
        targets[forget_idx] = self.target
        return replace(dataset, inputs=inputs, targets=targets)
