"""The original model as a forget spec sees it (:class:`~erasure.data.forget.OriginalProbe`).

A forget spec with ``needs_original`` (memorization, worst-case and subpopulation forget sets)
chooses its samples with the seed's original model, which trains on the training split alone, so
it exists before the forget set does. The probe trains nothing until asked: its model is the
run's original (same cache key, so trained once for the spec and the jobs), and the training
history is a second run of the same recipe and seed that records, after every epoch, each
training sample's true-class confidence and correctness; it is cached beside the models (a
state dict) and costs one extra training per seed, once.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from erasure import __version__
from erasure.core.cache import content_key, index_hash
from erasure.core.errors import ConfigError
from erasure.core.seeding import derive_seed, seed_everything
from erasure.core.timing import Timing, measure
from erasure.data.dataset import Dataset
from erasure.data.partitions import Partitions
from erasure.models.training import evaluating, predict_logits, train_model


class _History(nn.Module):
    """A training history as frozen parameters ``(epochs, n)`` (NaN rows for epochs that early
    stopping skipped), so that the model cache stores and restores it like a model."""

    def __init__(self, epochs: int, n: int) -> None:
        super().__init__()
        self.confidence = nn.Parameter(torch.full((epochs, n), float("nan")), requires_grad=False)
        self.correct = nn.Parameter(torch.full((epochs, n), float("nan")), requires_grad=False)


class WorkspaceProbe:
    """The :class:`~erasure.data.forget.OriginalProbe` of one seed's original (see the module)."""

    def __init__(self, workspace: Any, state: Any, dataset: Dataset, train_idx: Tensor) -> None:
        """``workspace`` and ``state``: the run's :class:`~erasure.execution.workspace.Workspace` and
        the seed's ``SeedState`` (not imported: the workspace imports this module)."""
        self.workspace, self.state = workspace, state
        self.partitions = Partitions(dataset, {"train": train_idx})
        self._model: nn.Module | None = None
        self._history: _History | None = None

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            ws, train = self.workspace, self.partitions["train"]
            if ws.exp.checkpoint is not None:
                self._model = ws.original_from_checkpoint(self.partitions.dataset, self.state.seed)[0]
            else:
                self._model = ws.train_cached(self.state, "original", train, self.state.seed, partitions=self.partitions)[0]
        return self._model

    def logits(self, index: Tensor) -> Tensor:
        return predict_logits(self.model, self.partitions, index)

    def features(self, index: Tensor) -> Tensor:
        model = self.model
        if not callable(getattr(model, "features", None)):
            raise ConfigError(f"{type(model).__name__} has no features(); this forget set needs a model with "
                              "penultimate features (erasure's models)", "")
        with evaluating(model):
            return torch.cat([model.features(x).float().flatten(1) for x, _ in self.partitions.batches(index, 1024)])

    def training_history(self, index: Tensor) -> dict[str, Tensor]:
        ws = self.workspace
        if ws.exp.checkpoint is not None:
            raise ConfigError("this forget set reads the original's training run, but the original comes from "
                              "model.checkpoint; train it here instead", "")
        if self._history is None:
            self._history = self._train_history()
        train = self.partitions["train"]
        position = torch.searchsorted(train, index.to(train.device))  # train is sorted
        done = ~self._history.confidence.isnan().any(1)  # epochs that ran
        return {name: getattr(self._history, name)[done][:, position] for name in ("confidence", "correct")}

    def _train_history(self) -> _History:
        ws, state, parts, recipe = self.workspace, self.state, self.partitions, self.workspace.exp.recipe
        train, seed = parts["train"], self.state.seed
        key = content_key(kind="training_history", data=state.data_key, source=ws.exp.source_spec,
                          split=index_hash(train), model=ws.exp.model_spec, training=recipe.as_dict(), seed=seed,
                          version=__version__)
        targets = parts.dataset.targets[train]

        def run(history: nn.Module) -> Timing:
            model = ws.make_model(parts.dataset, derive_seed(seed, "model-init"))  # the original's start

            def record(epoch: int) -> None:
                logits = predict_logits(model, parts, train)
                history.confidence[epoch] = logits.softmax(1).gather(1, targets.view(-1, 1)).squeeze(1)
                history.correct[epoch] = (logits.argmax(1) == targets).float()

            with torch.random.fork_rng(devices=[]), torch.enable_grad():
                generator = seed_everything(derive_seed(seed, "train"))
                with measure(ws.device) as timing:
                    train_model(model, parts, train, recipe, generator, on_epoch=record)
            return timing

        history, _, _ = ws.cache.get_or_train(key, _History(recipe.epochs, len(train)).to(ws.device), run,
                                              {"kind": "training_history", "seed": seed})
        return history


