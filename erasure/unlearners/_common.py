"""Helpers shared by several unlearners: relabelling, index batches, layer selection, diagonal Fisher."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from erasure.data.partitions import Partitions
from erasure.models.base import layer_groups
from erasure.models.training import task_loss
from erasure.unlearners.context import UnlearningContext


def random_wrong_labels(targets: Tensor, num_classes: int, generator: torch.Generator) -> Tensor:
    """A uniformly random class different from each target (SRL / amnesiac relabelling)."""
    shift = torch.randint(1, num_classes, targets.shape, generator=generator).to(targets.device)
    return (targets + shift) % num_classes


def index_batches(index: Tensor, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Chunks of a seeded permutation of ``index``."""
    order = torch.randperm(len(index), generator=generator).to(index.device)
    index = index[order]
    for start in range(0, len(index), batch_size):
        yield index[start : start + batch_size]


def example_batch(ctx: UnlearningContext, size: int = 2) -> Any:
    """A few training inputs, enough to trace a forward pass."""
    return next(iter(ctx.partitions.batches("train", size)))[0]


def last_layers(model: nn.Module, ctx: UnlearningContext, k: int) -> list[tuple[str, nn.Module]]:
    """The modules of the last ``k`` layers in forward order, a layer being a computation layer with
    its normalisations (:func:`erasure.models.base.layer_groups`): on a ResNet, k=2 is the head
    and the last convolution with its batch norm."""
    return [pair for group in layer_groups(model, example_batch(ctx))[-k:] for pair in group]


def freeze_all_but(model: nn.Module, trainable: list[nn.Module]) -> list[nn.Parameter]:
    """Turn gradients off outside ``trainable`` (a parameter already frozen stays frozen); returns
    the parameters left trainable."""
    keep = {id(p) for m in trainable for p in m.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep and p.requires_grad)
    return [p for p in model.parameters() if p.requires_grad]


def set_train_mode_only(model: nn.Module, trainable: list[nn.Module]) -> None:
    """Eval mode everywhere except in ``trainable`` (frozen batch-norm keeps its running statistics)."""
    model.eval()
    for m in trainable:
        m.train()


def diagonal_fisher(
    model: nn.Module,
    batches: Iterable[tuple[Any, Tensor]],
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    absolute: bool = False,
) -> dict[str, Tensor]:
    """Mean over batches of the squared (or absolute) gradient of the batch loss, per parameter.

    One forward/backward pass per batch (SSD's ``calc_importance``); ``loss_fn(logits, targets)``
    defaults to the task's loss (:func:`task_loss`: cross-entropy on single-label data). The
    model's mode is left as it was.
    """
    loss_fn = loss_fn or task_loss
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        for n, p in params.items():
            if p.grad is not None:
                total[n] += p.grad.abs() if absolute else p.grad.pow(2)
        count += 1
    model.zero_grad(set_to_none=True)
    return {n: t / max(count, 1) for n, t in total.items()}


def per_sample_fisher(
    model: nn.Module,
    partitions: Partitions,
    index: Tensor,
    chunk_size: int,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    absolute: bool = False,
) -> dict[str, Tensor]:
    """Mean over the samples at ``index`` of the squared (or absolute) gradient of each sample's own loss.

    The empirical Fisher diagonal: a sum over samples, so neither their order nor how they are
    batched changes it (up to float rounding; it accumulates in float64). Tensor inputs get
    their per-sample gradients from ``torch.func.vmap`` over ``grad``, ``chunk_size`` samples at
    a time (peak memory ~ ``chunk_size`` × the parameter count); other data (graphs) falls back to
    batches of one. The model must be in eval mode (no batch-dependent layers). ``loss_fn``
    defaults to the task's loss (:func:`task_loss`).
    """
    loss_fn = loss_fn or task_loss
    if partitions.dataset.kind not in ("tensor", "lazy"):
        return diagonal_fisher(model, partitions.batches(index, 1), loss_fn, absolute)
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def sample_loss(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return loss_fn(functional_call(model, (p, buffers), (x.unsqueeze(0),)), y.unsqueeze(0))

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    total = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
    for x, y in partitions.batches(index, chunk_size):
        for n, g in per_sample(params, x, y).items():
            total[n] += (g.abs() if absolute else g.pow(2)).sum(0, dtype=torch.float64)
    return {n: (t / max(len(index), 1)).to(params[n].dtype) for n, t in total.items()}


def fit_on_tensors(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    targets: Tensor,
    batch_size: int,
    generator: torch.Generator,
    after_step: Callable[[], None] | None = None,
) -> None:
    """One shuffled epoch of cross-entropy steps on in-memory ``(inputs, targets)``."""
    order = torch.randperm(len(targets), generator=generator).to(targets.device)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(inputs[chunk]), targets[chunk]).backward()
        optimizer.step()
        if after_step is not None:
            after_step()


def finetune_layers(model: nn.Module, ctx: UnlearningContext, layers: list[nn.Module], epochs: int,
                    optimizer_factory: Callable[[list[nn.Parameter]], torch.optim.Optimizer], batch_size: int) -> nn.Module:
    """Train only ``layers`` on D_r with the task's loss (cross-entropy on single-label data);
    everything else keeps its weights and statistics."""
    flags = [p.requires_grad for p in model.parameters()]
    trainable = freeze_all_but(model, layers)
    optimizer = optimizer_factory(trainable)
    for _ in range(epochs):
        set_train_mode_only(model, layers)
        for x, y in ctx.batches("retain", batch_size):
            optimizer.zero_grad(set_to_none=True)
            task_loss(model(x), y).backward()
            optimizer.step()
        ctx.end_epoch(model)
    for p, flag in zip(model.parameters(), flags):
        p.requires_grad_(flag)
    return model.eval()


def forgotten_classes(partitions: Partitions) -> Tensor | None:
    """The classes of a class-forgetting request (every training sample of them forgotten), else None."""
    if "forget_test" not in partitions:
        return None
    classes = torch.unique(partitions.targets("forget"))
    if torch.isin(partitions.targets("retain"), classes).any():
        return None
    return classes


def train_on_retain(model: nn.Module, ctx: UnlearningContext, optimizer: torch.optim.Optimizer, epochs: int,
                    batch_size: int | None, scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> nn.Module:
    """``epochs`` shuffled passes of the task's loss over D_r in train mode, the scheduler (if any)
    stepped after each epoch; returns the model in eval mode."""
    model.train()
    for _ in range(epochs):
        for x, y in ctx.batches("retain", batch_size):
            optimizer.zero_grad(set_to_none=True)
            task_loss(model(x), y).backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        ctx.end_epoch(model)
    return model.eval()
