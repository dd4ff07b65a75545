"""Independent replicas of the unlearned and the retrained model, for per-example attacks.

ForgettingQuality, ULiRA and KLoM need N samples of "unlearned" and N of "retrained"
(gold). Retrained replica i is a gold model trained with seed s_i
(``outcome.train_reference``). Unlearned replica i comes from one of two protocols
(``outcome.unlearn_reference``):

* ``challenge`` (the NeurIPS 2023 challenge): the job's unlearner run on the job's
  own original with the unlearning seed s_i, so all the randomness is the unlearner's;
* ``varied_originals``: an original trained with seed s_i, then the job's unlearner
  applied to it (with the context of seed s_i), as U-LiRA's shadow models do.

Every model goes through the on-disk model cache, and each replica's per-example
scores are memoised on the outcome, so a second evaluator of the same job, or of
another unlearner of the same seed (for the retrained replicas), or a rerun, pays
nothing.

Cost: N gold trainings (shared by every unlearner of a seed and across reruns) + N
unlearnings per unlearner, plus N original trainings (per seed, shared) for
``varied_originals``. On the digits MLP (30 epochs of 1.4k samples) one training
takes about 1 s on 2 CPU cores.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from erasure.core.seeding import derive_seed
from erasure.evaluators.base import Outcome
from erasure.models.training import predict_logits

Protocol = Literal["challenge", "varied_originals"]


def logit_confidence(logits: Tensor, targets: Tensor) -> np.ndarray:
    """φ = log p_y − log(1 − p_y), computed stably as z_y − logsumexp_{c≠y} z_c (LiRA's scaling)."""
    z = logits.float()
    true = z.gather(1, targets.view(-1, 1)).squeeze(1)
    others = z.scatter(1, targets.view(-1, 1), float("-inf"))
    return (true - torch.logsumexp(others, dim=1)).cpu().numpy()


#: The partitions whose per-example scores each replica keeps (forget for the attacks, all three for KLoM).
SCORED = ("forget", "retain", "test")


@dataclass
class ReplicaScores:
    """φ on the forget set of N unlearned and N retrained replicas, and their accuracies;
    ``*_margins`` hold φ (the margin) on every partition of :data:`SCORED`."""

    unlearned: np.ndarray  # (N, |D_f|)
    retrained: np.ndarray  # (N, |D_f|)
    unlearned_accuracy: dict[str, float]  # mean over replicas, per partition (retain, test)
    retrained_accuracy: dict[str, float]
    unlearned_margins: dict[str, np.ndarray]  # partition -> (N, size)
    retrained_margins: dict[str, np.ndarray]


def replica_seed(seed: int, which: str, i: int) -> int:
    """Unlearned and retrained replicas use disjoint seeds, so GoldModel's own row shows the
    estimator's floor for two independent samples of one distribution rather than a trivial 1."""
    return derive_seed(seed, "replica", which, str(i))


def _scores(model: torch.nn.Module, outcome: Outcome, which: str) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """(φ per partition of :data:`SCORED`, accuracy on retain and test): one forward pass per partition."""
    parts = outcome.partitions if which == "unlearned" else outcome.reference_partitions
    logits = {p: predict_logits(model, parts, p) for p in SCORED}
    phi = {p: logit_confidence(logits[p], parts.targets(p)) for p in SCORED}
    acc = {p: float((logits[p].argmax(1) == parts.targets(p)).float().mean()) for p in ("retain", "test")}
    return phi, acc


def replica_scores(outcome: Outcome, num_models: int, protocol: Protocol = "varied_originals") -> ReplicaScores:
    """Scores of ``num_models`` replicas of each kind (memoised per replica)."""
    if outcome.unlearn_reference is None or outcome.train_reference is None:
        raise RuntimeError("per-example attacks need the runner's train_reference and unlearn_reference hooks")
    original_seed = outcome.seed if protocol == "challenge" else None
    rows: dict[str, list] = {"unlearned": [], "retrained": []}
    for i in range(num_models):
        for which, memo in (("unlearned", outcome.memo), ("retrained", outcome.shared_memo)):
            seed = replica_seed(outcome.seed, which, i)
            key = ("replica", which, seed) + ((protocol,) if which == "unlearned" else ())
            if key not in memo:
                if which == "unlearned":
                    model = outcome.unlearn_reference(seed, original_seed=original_seed)
                else:
                    model = outcome.train_reference("gold", outcome.reference_partitions["retain"], seed)
                memo[key] = _scores(model, outcome, which)
            rows[which].append(memo[key])

    def mean_acc(items: list) -> dict[str, float]:
        return {p: float(np.mean([acc[p] for _, acc in items])) for p in ("retain", "test")}

    def margins(items: list) -> dict[str, np.ndarray]:
        return {p: np.stack([phi[p] for phi, _ in items]) for p in SCORED}

    unlearned, retrained = margins(rows["unlearned"]), margins(rows["retrained"])
    return ReplicaScores(
        unlearned=unlearned["forget"],
        retrained=retrained["forget"],
        unlearned_accuracy=mean_acc(rows["unlearned"]),
        retrained_accuracy=mean_acc(rows["retrained"]),
        unlearned_margins=unlearned,
        retrained_margins=retrained,
    )
