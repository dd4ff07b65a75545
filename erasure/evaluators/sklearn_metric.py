"""SklearnMetric: any scoring function of ``sklearn.metrics``, by name, on one model and partition
(ERASURE's ``TorchSKLearn`` measure, aiim-research/ERASURE erasure/evaluations/measures.py)."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch import Tensor

from erasure.core.errors import ConfigError, closest
from erasure.core.params import PartitionName
from erasure.results.targets import Target, as_gold, informational
from erasure.evaluators.base import TASKS, Evaluator, ModelName, Outcome, Undefined

Input = Literal["auto", "labels", "probabilities", "logits"]
SUFFIXES = ("_score", "_loss", "_error", "_corrcoef", "_deviance")
TRUTH = ("y_true", "labels_true", "y1")  # first argument of a metric that compares with the truth
PROBABILITY_ARGUMENTS = ("y_score", "y_proba", "y_prob")
PROBABILITY_METRICS = ("log_loss", "brier_score_loss", "d2_log_loss_score", "d2_brier_score")
# ranking metrics take the truth as an indicator matrix: one-hot of the class
RANKING_METRICS = ("coverage_error", "label_ranking_average_precision_score", "label_ranking_loss", "dcg_score", "ndcg_score")


def metric_function(name: str) -> Callable[..., Any] | None:
    """The function ``sklearn.metrics.<name>`` if it scores predictions against the truth, else None.

    Accepted: public functions named ``*_score``, ``*_loss``, ``*_error``, ``*_corrcoef`` or
    ``*_deviance`` whose first argument is the truth (so not ``silhouette_score(X, labels)``,
    curves, reports or confusion matrices).
    """
    import sklearn.metrics

    fn = getattr(sklearn.metrics, name, None)
    if name.startswith("_") or not inspect.isfunction(fn) or not name.endswith(SUFFIXES):
        return None
    first = next(iter(inspect.signature(fn).parameters), None)
    return fn if first in TRUTH else None


def metric_names() -> list[str]:
    import sklearn.metrics

    return sorted(n for n in dir(sklearn.metrics) if metric_function(n) is not None)


def default_input(name: str) -> str:
    """What ``name`` compares with the truth: class "probabilities" (roc_auc_score, log_loss, ...),
    "logits" (hinge_loss's decision values) or predicted "labels" (everything else)."""
    fn = metric_function(name)
    second = list(inspect.signature(fn).parameters)[1]
    if name in PROBABILITY_METRICS or second in PROBABILITY_ARGUMENTS:
        return "probabilities"
    return "logits" if second == "pred_decision" else "labels"


def sklearn_score(name: str, targets: Tensor, logits: Tensor, input: str = "auto",
                  parameters: dict[str, Any] | None = None) -> float:
    """``sklearn.metrics.<name>(truth, predictions, **parameters)`` for a model's ``logits``.

    ``input`` "labels" passes the arg-max, "probabilities" the softmax and "logits" the raw
    outputs; with two classes, scores are the positive class's (p₁, or z₁ − z₀), as sklearn's
    binary metrics expect. For more classes, ``labels`` defaults to every class (so the columns
    match the classes even when a partition lacks some) and roc_auc_score's ``multi_class`` to
    "ovr"; ranking metrics get the truth one-hot. On multi-label data the truth is the 0/1
    indicator matrix and predictions are per label: "labels" = logit > 0, "probabilities" = the
    sigmoid. Parameters given explicitly win.
    """
    fn = metric_function(name)
    kind = default_input(name) if input == "auto" else input
    num_classes = logits.shape[1]
    truth = targets.cpu().numpy()
    kwargs: dict[str, Any] = {}
    if targets.dim() == 2:  # multi-label: indicator matrices, each label on its own
        truth = truth.astype(np.int64)
        z = logits.double()
        scores = {"labels": (z > 0).long(), "probabilities": torch.sigmoid(z), "logits": z}[kind]
        predictions = scores.cpu().numpy()
    elif kind == "labels":
        predictions = logits.argmax(1).cpu().numpy()
    else:
        z = logits.double()
        scores = torch.softmax(z, 1) if kind == "probabilities" else z
        if num_classes == 2:
            scores = scores[:, 1] if kind == "probabilities" else z[:, 1] - z[:, 0]
        else:
            accepted = inspect.signature(fn).parameters
            if "labels" in accepted:
                kwargs["labels"] = list(range(num_classes))
            if name == "roc_auc_score":
                kwargs["multi_class"] = "ovr"
        predictions = scores.cpu().numpy()
        if name in RANKING_METRICS:
            truth = np.eye(num_classes)[truth]
    value = fn(truth, predictions, **{**kwargs, **(parameters or {})})
    if np.ndim(value) != 0:
        raise ValueError(f"sklearn.metrics.{name} returned an array of shape {np.shape(value)}, not one number; "
                         "set its 'average' (or similar) parameter")
    return float(value)


class SklearnMetric(Evaluator):
    """Any scoring function of sklearn.metrics, by name, on one model's predictions on a partition.

    ``<metric>_<partition>`` (``_<model>`` appended unless ``model`` is "unlearned"; or ``name``)
    = ``sklearn.metrics.<metric>(truth, predictions, **parameters)``, e.g. ``f1_score`` with
    ``parameters`` ``{"average": "macro"}``, ``balanced_accuracy_score``, ``roc_auc_score``
    (on probabilities, one-vs-rest), ``matthews_corrcoef``.

    ``input`` says what the metric receives besides the truth: "auto" picks class probabilities
    for functions of scores or probabilities (``y_score``, ``y_proba``: roc_auc_score,
    average_precision_score, log_loss, top_k_accuracy_score, brier_score_loss), the logits for
    hinge_loss, and the predicted labels otherwise. ERASURE's TorchSKLearn always passes labels.
    On multi-label data the metric sees indicator matrices (see :func:`sklearn_score`).
    """

    tasks = TASKS
    contract_config = {"parameters": {"metric": "f1_score", "parameters": {"average": "macro"}}}

    def __init__(self, metric: str, partition: PartitionName = "test", model: ModelName = "unlearned", input: Input = "auto",
                 parameters: dict[str, Any] | None = None, name: str | None = None):
        self.metric = metric
        self.partition = partition
        self.model = model
        self.input = input
        self.parameters = parameters
        self.name = name

    def check(self) -> None:
        fn = metric_function(self.metric)
        if fn is None:
            names = metric_names()
            close = closest(self.metric, names, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ConfigError(f"{self.metric!r} is not a scoring function of sklearn.metrics{hint} "
                              f"(metrics: {', '.join(names)})", "metric")
        accepted = list(inspect.signature(fn).parameters)[2:]
        for key in self.parameters or {}:
            if key not in accepted:
                raise ConfigError(f"sklearn.metrics.{self.metric} has no parameter {key!r} "
                                  f"(parameters: {', '.join(accepted)})", f"parameters.{key}")

    @property
    def metric_targets(self) -> dict[str, Target]:  # type: ignore[override]
        """Its one metric: as gold on the unlearned model (scikit-learn's metrics have various
        ranges, so the range is left open); informational on the original or gold model."""
        return {self.row_name: as_gold(None, None) if self.model == "unlearned" else informational()}

    @property
    def row_name(self) -> str:
        suffix = "" if self.model == "unlearned" else f"_{self.model}"
        return self.name or f"{self.metric}_{self.partition}{suffix}"

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        parts = outcome.partitions_for(self.model)
        if parts.size(self.partition) == 0:
            return {self.row_name: Undefined(f"partition {self.partition!r} is empty")}
        logits = outcome.logits(self.model, self.partition)
        return {self.row_name: sklearn_score(self.metric, parts.targets(self.partition), logits, self.input,
                                             self.parameters)}
