"""The :class:`Model` base: a classifier split into ``features`` (penultimate) and ``head``.

Models receive ``input_shape`` and ``num_classes`` from the data, so a config
names only their own hyper-parameters. Any ``nn.Module`` may be used as a model;
:func:`parametrized_layers` finds the layers that hold parameters in the order
the forward pass calls them (what CFk/EUk mean by "the last k layers").
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from erasure.core.registry import Component


class Model(nn.Module, Component, kind="model"):
    """A classifier ``head(features(x))``. Subclasses set ``self.head`` and implement ``features``."""

    head: nn.Module

    def features(self, x: Any) -> Tensor:
        """Penultimate representation of a batch."""
        raise NotImplementedError

    def forward(self, x: Any) -> Tensor:
        return self.head(self.features(x))

    def __repr__(self) -> str:  # nn.Module's repr, not Component's
        return nn.Module.__repr__(self)


def parametrized_layers(model: nn.Module, example: Any) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every module with its own parameters, in the order ``model(example)`` calls them.

    Modules whose parameters are never used in the forward pass come last, in
    attribute order. ``example`` is one batch of inputs (a few samples suffice).
    """
    owners = {m: name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))}
    order: list[nn.Module] = []
    hooks = [m.register_forward_pre_hook(lambda mod, _args: order.append(mod)) for m in owners]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    seen: list[nn.Module] = []
    for m in order:
        if m not in seen:
            seen.append(m)
    seen += [m for m in owners if m not in seen]
    return [(owners[m], m) for m in seen]
