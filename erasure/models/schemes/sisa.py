"""SISA training (Bourtoule et al., "Machine Unlearning", IEEE S&P 2021; reference code
cleverhans-lab/machine-unlearning: sisa.py, sharded.py, aggregation.py).

The training set, in a seeded order, is cut into ``shards`` contiguous shards and each shard
into ``slices`` contiguous slices (``np.split`` sizes, as the reference's uniform splitfile and
``slice_size = shard_size // slices``). Shard k's model trains slice by slice on the data of
slices 0..j (the reference's ``until``), ``int((j+1)·a) − int(j·a)`` epochs with
``a = 2·slices/(slices+1)·epochs/slices`` (its ``avg_epochs_per_slice``), in the fixed order of
the shard with deleted samples left out of their batches (its ``fetchShardBatch``: no shuffling,
batches may shrink). The weights before each slice are checkpointed. The ensemble votes: each
shard gives its one-hot argmax (``output`` "argmax", the reference's default) or its softmax,
weighted uniformly or by shard size (``strategy``); the module returns the log of the normalised
aggregate, so a softmax of its output is the vote share.

Deleting samples retrains only the shards that held them, from the checkpoint before the first
slice that held one (:func:`retrain_shard`); every slice seeds its own optimizer and RNGs from
(seed, shard, slice), so the result equals a SISA ensemble trained from scratch without them.
Memory: ``shards × slices`` checkpoints of the model's floating-point state (4 bytes each entry;
5 × 3 of ResNet-18: 0.67 GB), on the model's device.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from erasure.core.factory import instantiate
from erasure.core.params import PositiveInt
from erasure.core.seeding import derive_seed
from erasure.data.partitions import Partitions
from erasure.models.schemes.base import ModelMaker, TrainingScheme, gather, load_state_vector, state_vector, train_step


def slice_epochs(epochs: int, slices: int) -> list[int]:
    """Epochs per slice: the reference's ``avg_epochs_per_slice`` rounding."""
    average = 2 * slices / (slices + 1) * epochs / slices
    return [int((j + 1) * average) - int(j * average) for j in range(slices)]


def split_sizes(n: int, parts: int) -> list[int]:
    """Sizes of ``parts`` contiguous chunks of ``n``: equal, the last one taking the rest."""
    size = n // parts
    return [size] * (parts - 1) + [n - size * (parts - 1)]


class ShardedEnsemble(nn.Module):
    """The SISA ensemble: one model per shard, the shard/slice layout, which samples are still
    present, and the checkpoint of every shard before each slice."""

    def __init__(self, shards: list[nn.Module], order: Tensor, slices: int, seed: int, output: str, strategy: str):
        super().__init__()
        self.shards = nn.ModuleList(shards)
        self.slices, self.output, self.strategy = slices, output, strategy
        self.register_buffer("order", order.clone())  # training indices, shard by shard
        self.register_buffer("present", torch.ones(len(order), dtype=torch.bool, device=order.device))
        self.register_buffer("seed", torch.tensor(seed))
        width = len(state_vector(shards[0]))
        self.register_buffer("checkpoints", torch.zeros(len(shards), slices, width, device=order.device))
        with torch.no_grad():
            for k, model in enumerate(shards):
                self.checkpoints[k, 0] = state_vector(model)  # the initial weights

    def shard_range(self, k: int) -> tuple[int, int]:
        sizes = split_sizes(len(self.order), len(self.shards))
        start = sum(sizes[:k])
        return start, start + sizes[k]

    def slice_end(self, k: int, j: int) -> int:
        """Position (in ``order``) where the data of shard k's slices 0..j ends."""
        start, stop = self.shard_range(k)
        return stop if j == self.slices - 1 else start + (j + 1) * ((stop - start) // self.slices)

    def forward(self, x: Any) -> Tensor:
        votes = []
        for model in self.shards:
            logits = model(x)
            votes.append(nn.functional.one_hot(logits.argmax(1), logits.shape[1]).to(logits.dtype)
                         if self.output == "argmax" else logits.softmax(1))
        weights = torch.ones(len(self.shards), device=votes[0].device, dtype=votes[0].dtype)
        if self.strategy == "proportional":  # the reference weighs by the shard sizes of its splitfile
            weights = torch.tensor(split_sizes(len(self.order), len(self.shards)), device=weights.device,
                                   dtype=weights.dtype)
        share = torch.einsum("k,knc->nc", weights / weights.sum(), torch.stack(votes))
        return share.clamp_min(1e-12).log()


def retrain_shard(ensemble: ShardedEnsemble, k: int, first: int, partitions: Partitions, recipe: Any) -> int:
    """(Re)train shard k from the checkpoint before slice ``first`` to the end; returns the
    sample-gradient count spent (samples seen × epochs)."""
    model = ensemble.shards[k]
    load_state_vector(model, ensemble.checkpoints[k, first])
    start, _ = ensemble.shard_range(k)
    device = ensemble.order.device
    loss_fn = instantiate(recipe.loss, "loss")
    spent = 0
    for j, epochs in enumerate(slice_epochs(recipe.epochs, ensemble.slices)):
        if j < first:
            continue
        with torch.no_grad():
            ensemble.checkpoints[k, j] = state_vector(model)
        stop = ensemble.slice_end(k, j)
        seen, kept = ensemble.order[start:stop], ensemble.present[start:stop]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(derive_seed(int(ensemble.seed), "sisa", str(k), str(j)))
            optimizer = instantiate(recipe.optimizer, "optimizer", model.parameters())  # fresh per slice
            model.train()
            for _ in range(epochs):
                for positions in torch.arange(len(seen), device=device).split(recipe.batch_size):
                    batch = seen[positions][kept[positions]]
                    if len(batch) == 0:
                        continue
                    train_step(model, optimizer, loss_fn, gather(partitions, batch), recipe.amp)
                    spent += len(batch)
    model.eval()
    return spent


def full_cost(ensemble: ShardedEnsemble, epochs: int) -> int:
    """Sample-gradient count of training the whole ensemble from scratch on the present samples."""
    total = 0
    for k in range(len(ensemble.shards)):
        start, _ = ensemble.shard_range(k)
        for j, e in enumerate(slice_epochs(epochs, ensemble.slices)):
            total += e * int(ensemble.present[start:ensemble.slice_end(k, j)].sum())
    return total


def delete(ensemble: ShardedEnsemble, samples: Tensor, partitions: Partitions, recipe: Any) -> tuple[list[int], int]:
    """Remove ``samples`` and retrain each shard that held one from its last clean slice
    checkpoint; returns (the retrained shards, the sample-gradient count spent)."""
    hit = torch.isin(ensemble.order, samples) & ensemble.present
    ensemble.present &= ~hit
    retrained, spent = [], 0
    for k in range(len(ensemble.shards)):
        start, stop = ensemble.shard_range(k)
        positions = hit[start:stop].nonzero().flatten()
        if len(positions) == 0:
            continue
        first = next(j for j in range(ensemble.slices) if ensemble.slice_end(k, j) - start > int(positions[0]))
        spent += retrain_shard(ensemble, k, first, partitions, recipe)
        retrained.append(k)
    return retrained, spent


class SISAParameters:
    """The parameters of SISA's layout and vote, shared by the scheme and the ``SISA`` unlearner."""

    def __init__(self, shards: PositiveInt = 5, slices: PositiveInt = 1,
                 output: Literal["argmax", "softmax"] = "argmax",
                 strategy: Literal["uniform", "proportional"] = "uniform"):
        self.shards = shards
        self.slices = slices
        self.output = output
        self.strategy = strategy


class SISATraining(SISAParameters, TrainingScheme):
    """Sharded, isolated, sliced, aggregated training (see the module docstring). The recipe's
    optimizer, loss, batch size and epochs train each shard; its scheduler, validation and
    augmentation are not used."""

    def prepare(self, make_model: ModelMaker, partitions: Partitions, seed: int) -> ShardedEnsemble:
        train = partitions["train"]
        generator = torch.Generator().manual_seed(derive_seed(seed, "sisa-order"))
        order = train[torch.randperm(len(train), generator=generator).to(train.device)]
        models = [make_model(f"shard {k}") for k in range(self.shards)]
        return ShardedEnsemble(models, order, self.slices, seed, self.output, self.strategy)

    def fit(self, model: nn.Module, partitions: Partitions, index: Tensor, recipe: Any,
            generator: torch.Generator, candidates: Tensor | None = None) -> ShardedEnsemble:
        model.present.copy_(torch.isin(model.order, index))
        for k in range(len(model.shards)):
            retrain_shard(model, k, 0, partitions, recipe)
        return model
