"""The training recipe (``training`` in a config), the trainer and batched inference.

The loop is a plain PyTorch loop over index-sliced batches; benchmarks/overhead.py
holds it to within 10% of a hand-written one. :func:`task_loss` is the loss that follows the
data's task (single- or multi-label), for unlearners and evaluators.
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Iterator, Literal

import torch
from torch import Tensor, nn

from erasure.core.errors import ConfigError
from erasure.core.factory import instantiate
from erasure.core.params import LossSpec, OptimizerSpec, PositiveInt, Range, SchedulerSpec, SchemeSpec, TransformSpec
from erasure.data.augment import Augmentation, augmented, original
from erasure.data.dataset import MULTI_LABEL, Dataset
from erasure.data.partitions import Partitions


@dataclass
class TrainingRecipe:
    """How the original model is trained; GoldModel retrains with the same recipe on retain.

    ``validation_fraction`` > 0 holds out that share of the training partition
    (seeded) and stops when its loss has not improved for ``patience`` epochs,
    restoring the best weights (never augmented). ``augment``: train-time augmentation, a list
    of ``torchvision.transforms.v2`` specs applied to each training batch's inputs on the data's
    device, seeded from the job's generator (:mod:`erasure.data.augment`); the original, gold
    and every retrained reference model use it, evaluation never does. ``amp`` uses bfloat16
    autocast on CUDA (ignored on CPU); ``channels_last`` trains image models on CUDA in the
    channels-last memory format (faster convolutions on tensor cores; the weights come back in
    the default format); ``compile`` runs the training forward passes through ``torch.compile``.
    ``scheme``: train the original and gold under a training scheme (:mod:`erasure.models.schemes`).
    """

    epochs: PositiveInt = 10
    batch_size: PositiveInt = 64
    optimizer: OptimizerSpec = field(default_factory=lambda: {"class": "Adam", "parameters": {"lr": 1e-3}})
    loss: LossSpec = field(default_factory=lambda: {"class": "CrossEntropyLoss"})
    scheduler: SchedulerSpec | None = None
    validation_fraction: Annotated[float, Range(0, 1, high_inclusive=False)] = 0.0
    patience: PositiveInt = 5
    augment: list[TransformSpec] = field(default_factory=list)
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    scheme: SchemeSpec | None = None

    def as_dict(self) -> dict[str, Any]:
        # no scheme: the recipe (and every cache key and config hash made of it) is as before schemes existed
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items() if not (k == "scheme" and v is None)}


#: Losses of one class index per sample: they misread multi-label targets (CrossEntropyLoss takes
#: a float (N, L) matrix for class probabilities and trains a softmax over the labels).
CLASS_INDEX_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss, nn.MultiMarginLoss, nn.MultiLabelMarginLoss)


def check_task_loss(spec: dict[str, Any], dataset: Dataset) -> None:
    """Refuse a training loss that does not fit the data's task (a :class:`ConfigError` at ``training.loss``)."""
    check_loss_fits(spec, dataset.task, dataset.num_classes, dataset.name)


def check_loss_fits(spec: dict[str, Any], task: str, labels: int = 3, name: str = "the data") -> None:
    """:func:`check_task_loss` for a task known before the data is loaded (a source's ``task``)."""
    loss = instantiate(spec, "loss")
    loss_name, n = type(loss).__name__, labels + 1  # a batch whose size no label count equals: no broadcasting
    if task == MULTI_LABEL:
        if isinstance(loss, CLASS_INDEX_LOSSES):
            raise ConfigError(f"{loss_name} takes one class index per sample, but {name} is multi-label "
                              f"({labels} labels per sample, each 0 or 1): use {{\"class\": \"BCEWithLogitsLoss\"}}",
                              "training.loss")
        targets, needs = torch.eye(labels)[torch.arange(n) % labels], "logits (N, L) and 0/1 targets (N, L) (BCEWithLogitsLoss)"
    else:
        targets, needs = torch.arange(n) % labels, "logits (N, C) and class indices (N,) (CrossEntropyLoss)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. MSELoss's broadcasting warning before its error
            loss(torch.zeros(n, labels), targets)
    except Exception as exc:
        raise ConfigError(f"{loss_name} does not fit a classification task on the {task} targets of {name}: "
                          f"the loss receives {needs}: {' '.join(str(exc).split())}", "training.loss") from exc


def task_loss(logits: Tensor, targets: Tensor, reduction: Literal["mean", "none"] = "mean") -> Tensor:
    """The loss that follows the task: cross-entropy over the classes for class indices ``(N,)``;
    for multi-label 0/1 targets ``(N, L)``, binary cross-entropy with logits averaged over the
    labels (per sample with ``reduction`` "none"; "mean" equals ``BCEWithLogitsLoss()``)."""
    if targets.dim() == 1:
        return nn.functional.cross_entropy(logits, targets, reduction=reduction)
    per_label = nn.functional.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return per_label.mean() if reduction == "mean" else per_label.mean(1)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA when ``enabled``; a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_model(
    model: nn.Module,
    partitions: Partitions,
    partition: str | Tensor,
    recipe: TrainingRecipe,
    generator: torch.Generator,
    on_epoch: Callable[[int], None] | None = None,
) -> nn.Module:
    """Train ``model`` in place on a partition with ``recipe``; returns it (best weights if validating)."""
    index = partitions[partition] if isinstance(partition, str) else partition
    validation = None
    if recipe.validation_fraction > 0:
        order = torch.randperm(len(index), generator=generator).to(index.device)
        n_val = max(1, int(round(recipe.validation_fraction * len(index))))
        validation, index = index[order[:n_val]], index[order[n_val:]]
    device = next(model.parameters()).device
    optimizer = instantiate(recipe.optimizer, "optimizer", model.parameters())
    scheduler = instantiate(recipe.scheduler, "scheduler", optimizer=optimizer) if recipe.scheduler else None
    loss_fn = instantiate(recipe.loss, "loss")
    partitions = partitions.with_dataset(original(partitions.dataset))  # validation: never augmented
    training = partitions.with_dataset(augmented(partitions.dataset, Augmentation(recipe.augment), generator))
    forward = fast_forward(model, recipe, device)
    best_loss, best_state, stale = float("inf"), None, 0
    for epoch in range(recipe.epochs):
        model.train()
        for x, y in training.batches(index, recipe.batch_size, shuffle=True, generator=generator):
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, recipe.amp):
                loss = loss_fn(forward(x), y)
            loss.backward()
            optimizer.step()
        val_loss = None
        if validation is not None:
            val_loss = mean_loss(model, partitions, validation, loss_fn, recipe.batch_size * 4)
            if val_loss < best_loss:
                best_loss, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
        if scheduler is not None:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(val_loss if val_loss is not None else loss.item())
            else:
                scheduler.step()
        if on_epoch is not None:
            on_epoch(epoch)
        if validation is not None and stale >= recipe.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    if recipe.channels_last and device.type == "cuda":
        model.to(memory_format=torch.contiguous_format)
    model.eval()
    return model


def fast_forward(model: nn.Module, recipe: TrainingRecipe, device: torch.device) -> Callable[[Any], Tensor]:
    """The training forward pass under the recipe's ``channels_last`` (on CUDA: model and 4-D
    batches in that memory format; CPU kernels gain little from it, and torch's CPU backward
    crashed on a narrow ResNet at 224 x 224 in it) and ``compile`` (``torch.compile``; the
    compiled module shares the weights)."""
    channels_last = recipe.channels_last and device.type == "cuda"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    module = torch.compile(model) if recipe.compile else model
    if not channels_last:
        return module

    def forward(x: Any) -> Tensor:
        if isinstance(x, Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return module(x)

    return forward


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no gradients for the block; restores the previous mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def predict_logits(model: nn.Module, partitions: Partitions, partition: str | Tensor, batch_size: int = 1024) -> Tensor:
    """Logits of ``model`` on a whole partition, in batched forward passes."""
    with evaluating(model):
        outs = [model(x).float() for x, _ in partitions.batches(partition, batch_size)]
    if not outs:
        return torch.empty(0, getattr(partitions.dataset, "num_classes", 0), device=partitions.dataset.device)
    return torch.cat(outs)


def mean_loss(model: nn.Module, partitions: Partitions, partition: str | Tensor, loss_fn: Callable, batch_size: int = 1024) -> float:
    """Mean loss over a partition (sample-weighted)."""
    index = partitions[partition] if isinstance(partition, str) else partition
    total = 0.0
    with evaluating(model):
        for x, y in partitions.batches(index, batch_size):
            total += float(loss_fn(model(x), y)) * len(y)
    return total / max(1, len(index))


def accuracy(model: nn.Module, partitions: Partitions, partition: str | Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` on a partition (NaN when it is empty)."""
    index = partitions[partition] if isinstance(partition, str) else partition
    if len(index) == 0:
        return float("nan")
    logits = predict_logits(model, partitions, index, batch_size)
    return float((logits.argmax(1) == partitions.dataset.targets[index]).float().mean())
