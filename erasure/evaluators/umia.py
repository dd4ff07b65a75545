"""UMIA: the population loss attack of the NeurIPS 2023 unlearning challenge's starting kit."""
from __future__ import annotations

import numpy as np

from erasure.core.params import PositiveInt
from erasure.evaluators.attack_models import AttackModel, attack_classifier, quiet_convergence
from erasure.evaluators.base import TASKS, Evaluator, Outcome
from erasure.results.targets import as_gold


def loss_attack_accuracy(member_losses: np.ndarray, nonmember_losses: np.ndarray, n_splits: int = 10, seed: int = 0,
                         attack: AttackModel = "logistic") -> float:
    """Cross-validated accuracy of a logistic regression telling members from non-members by loss.

    The kit's ``simple_mia`` (unlearning-challenge/starting-kit, unlearning-CIFAR10.ipynb;
    Kurmanji et al. 2023): a random subset of the larger group, of the smaller one's size,
    stacked after the non-members; accuracy is the mean over ``n_splits`` stratified shuffle
    splits with a 10% test share (``random_state`` = ``seed``). The kit subsamples the forget
    set only, assuming it is the larger one. 0.5 means the attacker cannot tell them apart.
    ``attack`` "mlp" replaces the logistic regression by a small neural network.
    """
    from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score

    rng = np.random.default_rng(seed)
    members, nonmembers = np.asarray(member_losses), np.asarray(nonmember_losses)
    n = min(len(members), len(nonmembers))
    if n < 2:
        return float("nan")
    if len(members) > n:
        members = members[rng.choice(len(members), n, replace=False)]
    if len(nonmembers) > n:
        nonmembers = nonmembers[rng.choice(len(nonmembers), n, replace=False)]
    features = np.concatenate([nonmembers, members]).reshape(-1, 1)
    labels = np.concatenate([np.zeros(n), np.ones(n)])
    # the kit's 10% test share, but at least one sample of each class per split
    cv = StratifiedShuffleSplit(n_splits=n_splits, test_size=max(0.1, 2 / (2 * n)), random_state=seed)
    with quiet_convergence():
        return float(cross_val_score(attack_classifier(attack, seed), features, labels, cv=cv, scoring="accuracy").mean())


class UMIA(Evaluator):
    """``umia_accuracy``: loss attack on D_f (members) versus D_t (non-members); target: gold's value.
    ``attack``: "logistic" (the kit's) or "mlp" (a small neural network). On multi-label data the
    loss is the binary cross-entropy averaged over the labels (:meth:`Outcome.losses`)."""

    tasks = TASKS
    metric_targets = {"umia_accuracy": as_gold()}

    def __init__(self, n_splits: PositiveInt = 10, attack: AttackModel = "logistic"):
        self.n_splits = n_splits
        self.attack = attack

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        members = outcome.losses("unlearned", "forget").cpu().numpy()
        nonmembers = outcome.losses("unlearned", "test").cpu().numpy()
        return {"umia_accuracy": loss_attack_accuracy(members, nonmembers, self.n_splits, outcome.seed, self.attack)}
