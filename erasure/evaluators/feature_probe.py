"""FeatureProbe: is the forgotten data still in the penultimate features? A linear probe and CKA to gold.

Kim et al., "Are we truly forgetting? A critical re-examination of machine unlearning evaluation
protocols" (2025, yongwookim1/UUEF) find methods that reach a perfect forget accuracy by changing
little more than the last layer: the representation still carries the forgotten classes. Logit
metrics cannot see that; a fresh linear probe on the features, and the features' linear CKA
(Kornblith et al., ICML 2019) to the retrained model, can.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from erasure.core.params import PositiveInt
from erasure.core.seeding import derive_seed
from erasure.data.partitions import Partitions
from erasure.evaluators.base import Evaluator, Outcome, Undefined
from erasure.models.training import evaluating
from erasure.results.targets import as_gold, ideal

PROBED = ("forget", "forget_test", "test")
COMPARED = ("forget", "test")


def linear_cka(x: Tensor | np.ndarray, y: Tensor | np.ndarray) -> float:
    """Linear CKA between two representations of the same n samples (rows):
    ‖Yᶜᵀ Xᶜ‖²_F / (‖Xᶜᵀ Xᶜ‖_F ‖Yᶜᵀ Yᶜ‖_F) with column-centred Xᶜ, Yᶜ (Kornblith et al. 2019, eq. 5);
    1 for representations equal up to rotation and isotropic scaling, NaN for fewer than 2 rows."""
    x, y = (torch.as_tensor(np.asarray(a) if not isinstance(a, Tensor) else a).double() for a in (x, y))
    if len(x) < 2:
        return float("nan")
    x, y = x - x.mean(0), y - y.mean(0)
    cross = (y.T @ x).pow(2).sum()
    norm = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(cross / norm) if norm > 0 else float("nan")


def penultimate(model: nn.Module, partitions: Partitions, partition: str | Tensor, batch_size: int = 1024) -> Tensor | None:
    """``model.features`` on a partition, batched (None for a model without ``features``)."""
    if not callable(getattr(model, "features", None)):
        return None
    with evaluating(model):
        outs = [model.features(x).flatten(1).float() for x, _ in partitions.batches(partition, batch_size)]
    return torch.cat(outs) if outs else None


def probe_accuracy(x_fit: np.ndarray, y_fit: np.ndarray, x_eval: np.ndarray, y_eval: np.ndarray,
                   max_iter: int = 1000) -> float:
    """Accuracy on the eval rows of a fresh logistic regression (scikit-learn, standardised
    features) fitted on the fit rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter)).fit(x_fit, y_fit)
    return float((probe.predict(x_eval) == y_eval).mean())


class FeatureProbe(Evaluator):
    """``feature_probe_accuracy_<p>``: a fresh linear probe (logistic regression) fitted on the
    penultimate features (``model.features``) of the training set (retain and forget, with their
    labels: an attacker who may retrain the head; at most ``max_samples`` of them, drawn with the
    seed), scored on forget, forget_test (class or
    group forgetting) and test; and ``cka_gold_<p>``: linear CKA between the unlearned and the gold
    model's features on forget and test (1 for gold itself). A method that only rewrites the head
    gets a forget accuracy near 0 but keeps the original's probe accuracy and CKA; gold's probe
    accuracy is the target. Models without ``features`` get undefined values."""

    uses_gold = True
    metric_targets = {"feature_probe_accuracy_*": as_gold(), "cka_gold_*": ideal(1)}

    def __init__(self, max_samples: PositiveInt = 5000, max_iter: PositiveInt = 1000) -> None:
        self.max_samples = max_samples
        self.max_iter = max_iter

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        parts = outcome.partitions
        probed = [p for p in PROBED if p in parts and parts.size(p) > 0]
        compared = [p for p in COMPARED if p in parts and parts.size(p) > 0]
        train = parts["train"]
        if len(train) > self.max_samples:  # a seeded subset: the probe's cost does not grow with the data
            generator = torch.Generator().manual_seed(derive_seed(outcome.seed, "feature probe"))
            train = train[torch.randperm(len(train), generator=generator)[: self.max_samples].to(train.device)]
        fit = penultimate(outcome.model, parts, train)
        if fit is None:
            reason = Undefined(f"{type(outcome.model).__name__} has no features() (penultimate representation)")
            return {**{f"feature_probe_accuracy_{p}": reason for p in probed}, **{f"cka_gold_{p}": reason for p in compared}}
        x_fit, y_fit = fit.cpu().numpy(), parts.dataset.targets[train].cpu().numpy()
        out = {f"feature_probe_accuracy_{p}": probe_accuracy(
            x_fit, y_fit, penultimate(outcome.model, parts, p).cpu().numpy(), parts.targets(p).cpu().numpy(), self.max_iter)
            for p in probed}
        for p in compared:
            key = ("features", "gold", p)
            if key not in outcome.shared_memo:
                outcome.shared_memo[key] = penultimate(outcome.gold, outcome.reference_partitions, p)
            out[f"cka_gold_{p}"] = linear_cka(penultimate(outcome.model, parts, p), outcome.shared_memo[key])
        return out
