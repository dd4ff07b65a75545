"""The :class:`Model` base: a classifier split into ``features`` (penultimate) and ``head``.

Models receive ``input_shape`` and ``num_classes`` from the data, so a config
names only their own hyper-parameters. Any ``nn.Module`` may be used as a model;
:func:`parametrized_layers` finds the modules that hold parameters in the order
the forward pass calls them, and :func:`layer_groups` joins each normalisation to
the computation layer before it (what CFk/EUk mean by "the last k layers").
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


#: Normalisation layers: they belong to the computation layer before them (see :func:`layer_groups`).
NORMALISATIONS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


def layer_groups(model: nn.Module, example: Any) -> list[list[tuple[str, nn.Module]]]:
    """The model's layers in forward order, each a computation layer with its normalisations.

    A layer is a module with its own parameters (:func:`parametrized_layers`). A
    normalisation (batch, layer, group, instance or RMS norm) joins the group of the
    nearest computation layer before it in forward order, so on a ResNet the last
    convolution and its batch norm are one layer, as in Goel et al.'s reference code
    (``getRetrainLayers`` / ``resetFinalResnet`` of shash42/Evaluating-Inexact-Unlearning,
    src/methods.py). Normalisations that come before any computation layer join the first group.
    """
    groups: list[list[tuple[str, nn.Module]]] = []
    leading: list[tuple[str, nn.Module]] = []
    for name, module in parametrized_layers(model, example):
        if isinstance(module, NORMALISATIONS):
            (groups[-1] if groups else leading).append((name, module))
        else:
            groups.append([(name, module)])
    if leading:
        if not groups:
            return [leading]
        groups[0] = leading + groups[0]
    return groups
