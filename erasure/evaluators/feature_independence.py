"""FeatureIndependence: how much of a sensitive attribute the data (as the model sees it) still carries."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from erasure.evaluators.accuracy import top1_accuracy
from erasure.evaluators.base import Evaluator, Outcome
from erasure.results.targets import ideal, informational

MLP_PROBE_HIDDEN = (64,)


def majority_rate(z: np.ndarray) -> float:
    """Share of the most frequent value: the accuracy of always guessing it (chance for a probe)."""
    _, counts = np.unique(z, return_counts=True)
    return float(counts.max() / counts.sum())


def probe_scores(x_train: np.ndarray, z_train: np.ndarray, x_test: np.ndarray, z_test: np.ndarray,
                 seed: int = 0) -> dict[str, float]:
    """Test accuracy and AUC of fresh probes predicting ``z`` from ``x``, trained on the train rows.

    Probes: a logistic regression and an MLP (one hidden layer of 64, sklearn's
    ``MLPClassifier``), both on standardised features. AUC is ROC AUC (one-vs-rest,
    macro, for more than two values). Keys ``probe_{accuracy,auc}_{logistic,mlp}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probes = {
        "logistic": LogisticRegression(max_iter=2000),
        "mlp": MLPClassifier(MLP_PROBE_HIDDEN, max_iter=500, early_stopping=True, random_state=seed),
    }
    out = {}
    for name, probe in probes.items():
        model = make_pipeline(StandardScaler(), probe).fit(x_train, z_train)
        out[f"probe_accuracy_{name}"] = float((model.predict(x_test) == z_test).mean())
        proba = model.predict_proba(x_test)
        if len(np.unique(z_test)) < 2:
            out[f"probe_auc_{name}"] = float("nan")
        elif proba.shape[1] == 2:
            out[f"probe_auc_{name}"] = float(roc_auc_score(z_test, proba[:, 1]))
        else:
            out[f"probe_auc_{name}"] = float(roc_auc_score(z_test, proba, multi_class="ovr", labels=model.classes_))
    return out


def bures_wasserstein_distance(m0: np.ndarray, c0: np.ndarray, m1: np.ndarray, c1: np.ndarray) -> float:
    """W2 between N(m0, C0) and N(m1, C1): sqrt(‖m0 − m1‖² + tr(C0 + C1 − 2(C0^½ C1 C0^½)^½))."""
    from scipy.linalg import sqrtm

    root = sqrtm(c0)
    cross = sqrtm(root @ c1 @ root)
    squared = float(np.sum((m0 - m1) ** 2) + np.trace(c0 + c1 - 2 * np.real(cross)))
    return float(np.sqrt(max(squared, 0.0)))


def gaussian_w2_between_groups(x: np.ndarray, z: np.ndarray) -> float:
    """Largest pairwise Bures–Wasserstein distance between Gaussian fits of the groups of ``z``."""
    fits = []
    for g in np.unique(z):
        xg = x[z == g]
        fits.append((xg.mean(0), np.cov(xg, rowvar=False).reshape(x.shape[1], x.shape[1])))
    return max((bures_wasserstein_distance(*a, *b) for i, a in enumerate(fits) for b in fits[i + 1:]), default=0.0)


def empirical_w2_between_groups(x: np.ndarray, z: np.ndarray) -> float:
    """Largest pairwise exact W2 (``ot.emd2``, squared Euclidean cost, uniform weights) between the groups' samples."""
    import ot

    groups = [x[z == g] for g in np.unique(z)]
    values = [np.sqrt(max(ot.emd2(ot.unif(len(a)), ot.unif(len(b)), ot.dist(a, b)), 0.0))
              for i, a in enumerate(groups) for b in groups[i + 1:]]
    return float(max(values, default=0.0))


class FeatureIndependence(Evaluator):
    """Independence of a sensitive attribute Z from the data as the unlearned model sees it
    (Xu & Strohmer, feature unlearning). ``attribute`` defaults to the FeatureForget one.

    * ``probe_accuracy`` / ``probe_auc``: the larger of a logistic-regression probe and
      an MLP probe predicting Z from the (flattened) inputs, trained on the train
      partition and scored on test; each probe also as ``probe_{accuracy,auc}_{logistic,mlp}``.
      Ideal: ``probe_accuracy`` = ``probe_chance``, ``probe_auc`` = 0.5.
    * ``probe_chance``: majority rate of Z on test.
    * ``task_accuracy``: the unlearned model's test accuracy on its data;
      ``task_accuracy_original``: the original model's on the raw data.
    * ``w2_between_groups``: W2 between the Gaussian fits (Bures–Wasserstein) of the
      test inputs of each group (the largest pair for more than two groups);
      ``w2_between_groups_empirical``: exact W2 between the groups' test samples
      (``ot.emd2``; it keeps a finite-sample floor above 0 even for independent data).
    """

    metric_targets = {"probe_accuracy*": informational("lower", 0, 1), "probe_auc*": ideal(0.5),
                      "probe_chance": informational(None, 0, 1), "task_accuracy": ideal(1),
                      "task_accuracy_original": informational(None, 0, 1), "w2_between_groups*": ideal(0, 0, None)}

    contract_config: ClassVar[dict[str, Any]] = {"forget": {"class": "FeatureForget", "parameters": {"attribute": "group"}}}

    def __init__(self, attribute: str | None = None):
        self.attribute = attribute

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        parts = outcome.partitions
        name = self.attribute or getattr(parts.forget_spec, "attribute", None)
        if name is None or name not in parts.dataset.attributes:
            raise ValueError(f"no attribute {name!r} to probe: set 'attribute' or use FeatureForget")
        if parts.dataset.kind != "tensor":
            raise ValueError(f"FeatureIndependence needs tensor inputs, got {parts.dataset.kind} data")
        inputs = parts.dataset.inputs
        x = inputs.detach().reshape(len(inputs), -1).double().cpu().numpy()
        z = parts.dataset.attributes[name].cpu().numpy()
        train, test = parts["train"].cpu().numpy(), parts["test"].cpu().numpy()
        probes = probe_scores(x[train], z[train], x[test], z[test], seed=outcome.seed)
        return {
            "probe_accuracy": max(probes["probe_accuracy_logistic"], probes["probe_accuracy_mlp"]),
            "probe_auc": max(probes["probe_auc_logistic"], probes["probe_auc_mlp"]),
            **probes,
            "probe_chance": majority_rate(z[test]),
            "task_accuracy": top1_accuracy(outcome.logits("unlearned", "test"), outcome.targets("test")),
            "task_accuracy_original": top1_accuracy(outcome.logits("original", "test"),
                                                    outcome.reference_partitions.targets("test")),
            "w2_between_groups": gaussian_w2_between_groups(x[test], z[test]),
            "w2_between_groups_empirical": empirical_w2_between_groups(x[test], z[test]),
        }
