"""Subpopulation forget sets: a cluster of the original's feature space (RUM's entanglement
analysis, kairanzhao/RUM surgical_plugins/cluster.py: scikit-learn ``KMeans`` on the penultimate
features of the original model)."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from erasure.core.errors import ConfigError
from erasure.core.params import NonNegativeInt, PositiveInt
from erasure.data.dataset import Dataset
from erasure.data.forget import ForgetSpec, OriginalProbe


def feature_clusters(features: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """Cluster label of each row: ``KMeans(n_clusters, random_state=seed)``, the reference's call."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=n_clusters, random_state=seed, n_init="auto").fit_predict(features)


class SubpopulationForget(ForgetSpec):
    """Forget every training sample of one cluster of the original's penultimate features
    (:func:`feature_clusters` with ``n_clusters``). ``rank`` picks the cluster by size, 0 the
    largest; without it a cluster is drawn with the seed's generator. The test samples are not
    assigned to clusters (no forget_test partition)."""

    needs_original = True

    def __init__(self, n_clusters: PositiveInt = 10, rank: NonNegativeInt | None = None):
        self.n_clusters = n_clusters
        self.rank = rank

    def check(self) -> None:
        if self.n_clusters < 2:
            raise ConfigError(f"expected at least 2 clusters (one is the whole training set), got {self.n_clusters}",
                              "n_clusters")
        if self.rank is not None and self.rank >= self.n_clusters:
            raise ConfigError(f"rank {self.rank} is beyond the {self.n_clusters} clusters (0 is the largest)", "rank")

    def select(self, dataset: Dataset, train_idx: Tensor, rng: np.random.Generator,
               original: OriginalProbe | None = None) -> Tensor:
        features = original.features(train_idx).cpu().numpy()
        labels = feature_clusters(features, self.n_clusters, int(rng.integers(2**31 - 1)))
        sizes = np.bincount(labels, minlength=self.n_clusters)
        by_size = np.argsort(-sizes, kind="stable")
        cluster = by_size[self.rank] if self.rank is not None else by_size[rng.integers(np.count_nonzero(sizes))]
        return train_idx[torch.as_tensor(labels == cluster, device=train_idx.device)]
