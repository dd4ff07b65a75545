"""Training with an update log, for amnesiac unlearning (Graves et al., "Amnesiac Machine
Learning", AAAI 2021; reference code lmgraves/AmnesiacML, "Amnesiac Unlearning - MNIST.ipynb").

The model trains with the recipe's optimizer, loss and shuffled batches; for every batch that
holds a sample a deletion request may remove (``log`` "candidates", the reference's choice: it
logs the batches that hold the sensitive class), or for every batch (``log`` "all"), the step's
parameter update θ_after − θ_before and the batch's sample indices are kept. Memory per logged
update: 4 bytes per parameter plus 8 bytes per sample of the batch (about 19 KB for a 4,800-parameter
MLP, 45 MB for ResNet-18); the log is kept on the model's device and may hold at most
``max_log_mb`` MiB (training fails with a clear message beyond that). The recipe's
``training.augment`` applies to the batches as in plain training (the logged update is the step
taken on the augmented batch, which is what undoing it takes back).
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from erasure.core.factory import instantiate
from erasure.core.params import PositiveFloat
from erasure.data.augment import Augmentation, augmented
from erasure.data.partitions import Partitions
from erasure.models.schemes.base import (ModelMaker, ResizableState, TrainingScheme, gather, parameter_vector,
                                         train_step)


class LoggedModel(ResizableState):
    """A model with its update log: ``updates`` (M, parameters), ``members`` (M, batch size; −1
    pads a short batch) and ``undone`` (M,), which updates were already taken back."""

    def __init__(self, model: nn.Module, batch_size: int):
        super().__init__()
        self.model = model
        device = next(model.parameters()).device
        width = sum(p.numel() for p in model.parameters())
        self.register_buffer("updates", torch.zeros(0, width, device=device))
        self.register_buffer("members", torch.zeros(0, batch_size, dtype=torch.long, device=device))
        self.register_buffer("undone", torch.zeros(0, dtype=torch.bool, device=device))

    def forward(self, x: Any) -> Tensor:
        return self.model(x)


def train_logged(logged: LoggedModel, partitions: Partitions, index: Tensor, recipe: Any, generator: torch.Generator,
                 candidates: Tensor | None, max_log_mb: float) -> LoggedModel:
    """The recipe's training loop (shuffled batches from ``generator``), logging the update of every
    batch that holds a sample of ``candidates`` (every batch when ``candidates`` is None)."""
    model, device = logged.model, logged.updates.device
    partitions = partitions.with_dataset(augmented(partitions.dataset, Augmentation(recipe.augment), generator))
    optimizer = instantiate(recipe.optimizer, "optimizer", model.parameters())
    scheduler = instantiate(recipe.scheduler, "scheduler", optimizer=optimizer) if recipe.scheduler else None
    loss_fn = instantiate(recipe.loss, "loss")
    updates, members = [], []
    per_update = 4 * sum(p.numel() for p in model.parameters()) + 8 * recipe.batch_size  # bytes
    max_updates = int(max_log_mb * 2**20 // per_update)
    for _ in range(recipe.epochs):
        model.train()
        order = index[torch.randperm(len(index), generator=generator).to(index.device)]
        for batch in order.split(recipe.batch_size):
            log = candidates is None or bool(torch.isin(batch, candidates).any())
            before = parameter_vector(model) if log else None
            loss = train_step(model, optimizer, loss_fn, gather(partitions, batch), recipe.amp)
            if log:
                if len(updates) == max_updates:
                    raise RuntimeError(f"the update log is full ({max_updates} updates of {per_update / 2**20:.3g} MiB "
                                       f"fill max_log_mb {max_log_mb:g}); raise it or log only 'candidates'")
                updates.append(parameter_vector(model) - before)
                members.append(nn.functional.pad(batch, (0, recipe.batch_size - len(batch)), value=-1))
        if scheduler is not None:
            scheduler.step(loss.item()) if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) \
                else scheduler.step()
    model.eval()
    width = logged.updates.shape[1]
    logged.updates = torch.stack(updates) if updates else torch.zeros(0, width, device=device)
    logged.members = torch.stack(members) if members else torch.zeros(0, recipe.batch_size, dtype=torch.long, device=device)
    logged.undone = torch.zeros(len(updates), dtype=torch.bool, device=device)
    return logged


def undo(logged: LoggedModel, samples: Tensor) -> Tensor:
    """Subtract the logged updates of the batches that held any of ``samples`` (each update once
    over all requests); returns which updates were taken back. A sample in no logged batch is an
    error: its influence cannot be undone."""
    missing = samples[~torch.isin(samples, logged.members)]
    if len(missing):
        raise RuntimeError(f"{len(missing)} sample(s) to delete (e.g. {missing[:5].tolist()}) are in no logged "
                           "batch; train with log 'all' or name them in the run's deletion requests")
    hit = torch.isin(logged.members, samples).any(1) & ~logged.undone
    with torch.no_grad():
        vector = parameter_vector(logged.model) - logged.updates[hit].sum(0)
        torch.nn.utils.vector_to_parameters(vector, logged.model.parameters())
    logged.undone |= hit
    return hit


class UpdateLogTraining(TrainingScheme):
    """Plain training that keeps the parameter update of each batch holding a deletion candidate
    (see the module docstring). ``max_log_mb`` bounds the log's memory."""

    uses_candidates = True

    def __init__(self, log: Literal["candidates", "all"] = "candidates", max_log_mb: PositiveFloat = 1024.0):
        self.log = log
        self.max_log_mb = max_log_mb

    def prepare(self, make_model: ModelMaker, partitions: Partitions, seed: int) -> LoggedModel:
        return LoggedModel(make_model(), 1)

    def fit(self, model: nn.Module, partitions: Partitions, index: Tensor, recipe: Any,
            generator: torch.Generator, candidates: Tensor | None = None) -> LoggedModel:
        if self.log == "all" or candidates is None:
            candidates = None
        return train_logged(model, partitions, index, recipe, generator, candidates, self.max_log_mb)
