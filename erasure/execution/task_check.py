"""Whether an experiment's loss, unlearners and evaluators handle the task of its data.

Single-label data has class indices as targets, multi-label data a 0/1 matrix (see
:attr:`erasure.data.Dataset.task`). Each unlearner and evaluator lists the tasks it handles in
``tasks``; the others are refused with the config path before anything is trained.
"""
from __future__ import annotations

from typing import Any

from erasure.core.errors import ConfigError
from erasure.core.registry import registry
from erasure.data.dataset import Dataset
from erasure.models.training import check_task_loss


def check_task(experiment: Any, dataset: Dataset) -> None:
    """Raise a :class:`ConfigError` (with its config path) for the first part of ``experiment``
    that does not handle ``dataset``'s task: the training loss, an unlearner or an evaluator."""
    check_task_loss(experiment.recipe.loss, dataset)
    parts = [(f"unlearners[{i}]", e.unlearner, "unlearner") for i, e in enumerate(experiment.unlearners)]
    parts += [(f"evaluators[{i}]", ev, "evaluator") for i, ev in enumerate(experiment.evaluators)]
    for path, component, kind in parts:
        if dataset.task not in component.tasks:
            name = type(component).__name__
            able = sorted(n for n, cls in registry(kind).items() if dataset.task in cls.tasks)
            labels = f" ({dataset.num_classes} labels per sample)" if dataset.multi_label else ""
            raise ConfigError(f"{name} handles {' and '.join(component.tasks)} targets only, but {dataset.name} is "
                              f"{dataset.task}{labels}; {kind}s for {dataset.task} data: {', '.join(able)}", path)
