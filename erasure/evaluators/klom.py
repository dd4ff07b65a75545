"""KLoM: KL divergence of margins (Georgiev et al., "Attribute-to-Delete: machine unlearning via
datamodel matching", 2024, appendix E.1; RoyRin/data-unlearning-bench, unlearning_bench/eval.py
and run.py).

For every point, the margins φ = z_y − logsumexp_{c≠y} z_c of N unlearned models and of N oracles
(retrained without D_f) form two samples; KLoM is the KL divergence between their histograms
(20 bins over the joint range of the two samples, margins clipped to ±100, ε 1e-5 where the first
distribution has mass and the second none, scipy's ``entropy`` normalising both). The per-point
values are summarised by percentiles over the forget, retain and validation (test) points.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import stats

from erasure.core.errors import ConfigError
from erasure.core.params import PositiveInt
from erasure.evaluators.base import Evaluator, Outcome
from erasure.evaluators.replicas import Protocol, replica_scores
from erasure.results.targets import ideal

#: KLoM's names of the partitions: validation is the held-out test split here.
GROUPS = {"forget": "forget", "retain": "retain", "val": "test"}
DEFAULT_PERCENTILES = (50, 95)


def binned_kl(p: np.ndarray, q: np.ndarray, bins: int = 20, eps: float = 1e-5, clip: float = 100.0) -> np.ndarray:
    """KL(P ‖ Q) per column of samples ``p`` (n_p, M) and ``q`` (n_q, M), both histogrammed on
    ``bins`` equal bins spanning the column's joint range (the reference's
    ``compute_binned_KL_div``, vectorised: ``np.digitize`` semantics, so a sample equal to the
    range's top falls outside every bin, as there)."""
    p, q = np.clip(p, -clip, clip), np.clip(q, -clip, clip)
    start = np.minimum(p.min(0), q.min(0))
    end = np.maximum(p.max(0), q.max(0))
    end = np.where(start >= end, start + 1, end)
    edges = np.linspace(start, end, bins + 1)  # (bins + 1, M)

    def probabilities(x: np.ndarray) -> np.ndarray:
        where = (edges[None] <= x[:, None]).sum(1)  # np.digitize: edges[i-1] <= x < edges[i] gives i
        counts = np.stack([(where == i).sum(0) for i in range(1, bins + 1)]).astype(float)  # (bins, M)
        total = counts.sum(0)
        return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)

    pp, qq = probabilities(p), probabilities(q)
    qq = np.where(pp > 0, np.maximum(qq, eps), qq)
    with np.errstate(invalid="ignore", divide="ignore"):
        return stats.entropy(pp, qq, axis=0)


def klom(unlearned: np.ndarray, oracle: np.ndarray, direction: Literal["oracle", "unlearned"] = "oracle",
         **options: float) -> np.ndarray:
    """Per-point KLoM of unlearned and oracle margins ``(N, M)``. ``direction`` "oracle" is
    KL(oracle ‖ unlearned), what run.py computes (it passes the oracle margins as
    ``kl_from_margins``'s first argument, named for the unlearned ones); "unlearned" the reverse."""
    first, second = (oracle, unlearned) if direction == "oracle" else (unlearned, oracle)
    return binned_kl(first, second, **options)


class KLoM(Evaluator):
    """``klom_<group>_p<q>``: percentile q (``percentiles``; by default 50 and 95) of the per-point
    KLoM on forget, retain and val (the test split) points (target 0: the unlearned models'
    margins distributed as the oracles').

    The N unlearned models are the replicas of :mod:`erasure.evaluators.replicas` (``protocol``
    "varied_originals": the unlearner applied to originals trained with N seeds, as the reference
    unlearns N pretrained models; "challenge": N unlearning seeds on the job's original); the N
    oracles are the retrained replicas that ULiRA and ForgettingQuality share. The reference uses
    100 of each; ``num_models`` sets N here."""

    metric_targets = {"klom_*": ideal(0, low=0, high=None)}
    contract_config = {"parameters": {"num_models": 2}}

    def __init__(self, num_models: PositiveInt = 16, protocol: Protocol = "varied_originals",
                 percentiles: list[float] | None = None, bins: PositiveInt = 20,
                 direction: Literal["oracle", "unlearned"] = "oracle"):
        self.num_models = num_models
        self.protocol = protocol
        self.percentiles = percentiles
        self.bins = bins
        self.direction = direction

    def check(self) -> None:
        if self.num_models < 2:
            raise ConfigError(f"num_models must be at least 2 (a distribution per point), got {self.num_models}",
                              "num_models")
        bad = [q for q in self.percentiles or DEFAULT_PERCENTILES if not 0 <= q <= 100]
        if bad or self.percentiles == []:
            raise ConfigError(f"expected percentiles in [0, 100], got {self.percentiles}", "percentiles")

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        s = replica_scores(outcome, self.num_models, self.protocol)
        metrics = {}
        for group, partition in GROUPS.items():
            values = klom(s.unlearned_margins[partition], s.retrained_margins[partition], self.direction, bins=self.bins)
            outcome.artifacts[f"klom_{group}"] = values
            for q in self.percentiles or DEFAULT_PERCENTILES:
                metrics[f"klom_{group}_p{q:g}"] = float(np.percentile(values, q)) if len(values) else float("nan")
        return metrics
