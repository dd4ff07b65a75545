"""The :class:`TrainingScheme` contract: how the original (and gold) is trained for methods that
need a particular training (SISA's shards, Amnesiac's update log, Certified Removal's
regularised linear head).

A scheme turns fresh models into its own ``nn.Module`` (:meth:`~TrainingScheme.prepare`) and
trains it in place (:meth:`~TrainingScheme.fit`). Everything the unlearning needs later (slice
checkpoints, logged updates, the loss perturbation) lives in the module's ``state_dict``, so
the model cache stores and reloads it like any reference model. ``training.scheme`` names one
for a whole config; a method that needs one declares it (``Unlearner.training_scheme``) and
the runner trains that method's original and gold under it.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from erasure.core.factory import instantiate
from erasure.core.registry import Component
from erasure.data.partitions import Partitions
from erasure.models.training import autocast, train_model

#: ``make_model(*names)``: a fresh model of the config, initialised from the job's seed and ``names``.
ModelMaker = Callable[..., nn.Module]


class TrainingScheme(Component, kind="scheme"):
    """Base of the training schemes. ``candidates`` (in :meth:`fit`) are the training samples that
    deletion requests of the run may remove; a scheme that reads them (logs only what concerns
    them) sets ``uses_candidates``, and its models are cached per candidate set."""

    uses_candidates: ClassVar[bool] = False

    def prepare(self, make_model: ModelMaker, partitions: Partitions, seed: int) -> nn.Module:
        """The scheme's model before training, of a shape fixed by the data and the parameters."""
        raise NotImplementedError

    def fit(self, model: nn.Module, partitions: Partitions, index: Tensor, recipe: Any,
            generator: torch.Generator, candidates: Tensor | None = None) -> nn.Module:
        """Train ``model`` (from :meth:`prepare`) in place on ``index`` with ``recipe``; returns it."""
        raise NotImplementedError


def build_scheme(spec: dict | None) -> TrainingScheme | None:
    """The scheme of a ``training.scheme`` spec (None: plain training)."""
    return None if spec is None else instantiate(spec, "scheme")


def uses_candidates(recipe: Any) -> bool:
    """Whether a recipe's scheme reads the deletion candidates (they then belong to its cache key)."""
    scheme = build_scheme(getattr(recipe, "scheme", None))
    return scheme is not None and scheme.uses_candidates


def scheme_spec(scheme: TrainingScheme) -> dict[str, Any]:
    """A scheme as the spec that builds it again (what recipes, cache keys and comparisons hold)."""
    return {"class": type(scheme).__name__, "parameters": scheme.get_params()}


def same_scheme(a: dict | None, b: dict | None) -> bool:
    """Whether two scheme specs build the same scheme (defaults filled in)."""
    if a is None or b is None:
        return a is b
    return scheme_spec(build_scheme(a)) == scheme_spec(build_scheme(b))


def state_vector(module: nn.Module) -> Tensor:
    """The floating-point entries of ``module.state_dict()`` as one flat vector (a checkpoint)."""
    return torch.cat([v.detach().reshape(-1).float() for v in module.state_dict().values() if v.is_floating_point()])


def load_state_vector(module: nn.Module, vector: Tensor) -> None:
    """Write a :func:`state_vector` back into ``module`` (in place)."""
    offset = 0
    with torch.no_grad():
        for value in module.state_dict().values():
            if value.is_floating_point():
                value.copy_(vector[offset:offset + value.numel()].view_as(value))
                offset += value.numel()


def parameter_vector(module: nn.Module) -> Tensor:
    """The module's parameters as one flat vector (a copy)."""
    return torch.nn.utils.parameters_to_vector([p.detach() for p in module.parameters()]).clone()


class ResizableState(nn.Module):
    """A module whose buffers take the shapes of the ``state_dict`` loaded into it (an update log
    whose length is known only after training)."""

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        for name, buffer in list(self._buffers.items()):
            saved = state_dict.get(prefix + name)
            if buffer is not None and saved is not None and saved.shape != buffer.shape:
                self._buffers[name] = torch.empty(saved.shape, dtype=buffer.dtype, device=buffer.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable, batch: tuple[Any, Tensor],
               amp: bool = False) -> Tensor:
    """One optimizer step on a batch (the recipe's loop body); returns the loss."""
    x, y = batch
    optimizer.zero_grad(set_to_none=True)
    with autocast(y.device, amp):
        loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def gather(partitions: Partitions, index: Tensor) -> tuple[Any, Tensor]:
    """The inputs and targets of the samples ``index`` as one batch."""
    return next(partitions.batches(index, max(1, len(index))))


def prepare_model(recipe: Any, make_model: ModelMaker, partitions: Partitions, seed: int) -> nn.Module:
    """A fresh model for ``recipe``: ``make_model()``, or its scheme's model built from fresh ones."""
    scheme = build_scheme(getattr(recipe, "scheme", None))
    return make_model() if scheme is None else scheme.prepare(make_model, partitions, seed)


def fit_model(model: nn.Module, partitions: Partitions, index: Tensor, recipe: Any, generator: torch.Generator,
              candidates: Tensor | None = None) -> nn.Module:
    """Train a model from :func:`prepare_model` in place: the plain loop, or the recipe's scheme."""
    scheme = build_scheme(getattr(recipe, "scheme", None))
    if scheme is None:
        return train_model(model, partitions, index, recipe, generator)
    return scheme.fit(model, partitions, index, recipe, generator, candidates)
