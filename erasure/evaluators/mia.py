"""Population membership attacks on the forget set: EntropyMIA (SSD, JiT) and MIAEfficacy (SalUn).

Both read the memoised logits of the unlearned model (one batched forward
pass per partition, shared with every other evaluator of the job).
Reference code: if-loops/selective-synaptic-dampening ``src/metrics.py``
(``get_membership_attack_prob``, from vikram2000b/bad-teaching-unlearning) and
OPTML-Group/Unlearn-Saliency ``Classification/evaluation/SVC_MIA.py`` with the
call in ``Classification/main_forget.py``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from erasure.core.params import PositiveFloat
from erasure.evaluators.base import Evaluator, ModelName, Outcome
from erasure.results.targets import as_gold


def softmax_entropy(logits: Tensor) -> np.ndarray:
    """Shannon entropy (nats) of each row's softmax."""
    logp = torch.log_softmax(logits.float(), dim=1)
    return (-(logp.exp() * logp).sum(1)).cpu().numpy()


def true_class_confidence(logits: Tensor, targets: Tensor) -> np.ndarray:
    """Softmax probability of each row's true class."""
    return torch.softmax(logits.float(), dim=1).gather(1, targets.view(-1, 1)).squeeze(1).cpu().numpy()


def entropy_member_rate(member: np.ndarray, nonmember: np.ndarray, target: np.ndarray) -> float:
    """Share of ``target`` called member by a balanced logistic regression on one feature,
    fit on ``member`` (label 1) versus ``nonmember`` (label 0) (Foster et al. 2024, SSD code).

    The reference asks for ``multi_class="multinomial"``, which scikit-learn before 1.5 honoured
    on two classes: a two-class softmax whose L2 penalty on both weight vectors is half the
    binary one's, i.e. the binary model with C = 2 (the option is gone from newer releases)."""
    from sklearn.linear_model import LogisticRegression

    if len(target) == 0 or len(member) == 0 or len(nonmember) == 0:
        return float("nan")
    x = np.concatenate([member, nonmember]).reshape(-1, 1)
    y = np.concatenate([np.ones(len(member)), np.zeros(len(nonmember))])
    clf = LogisticRegression(class_weight="balanced", C=2.0).fit(x, y)
    return float(clf.predict(np.asarray(target).reshape(-1, 1)).mean())


def svc_nonmember_rate(member: np.ndarray, nonmember: np.ndarray, target: np.ndarray, rng: np.random.Generator,
                       C: float = 3.0) -> float:
    """Share of ``target`` called non-member by an RBF SVC (C, gamma "auto") on one feature,
    fit on a random ``len(nonmember)`` subset of ``member`` (label 1) versus ``nonmember``
    (label 0) (Fan et al. 2024, SalUn's ``SVC_MIA``; the reference takes the first |D_t|
    samples of D_r in storage order)."""
    from sklearn.svm import SVC

    if len(target) == 0 or len(member) == 0 or len(nonmember) == 0:
        return float("nan")
    member = np.asarray(member)
    if len(member) > len(nonmember):
        member = member[rng.choice(len(member), len(nonmember), replace=False)]
    x = np.concatenate([member, nonmember]).reshape(-1, 1)
    y = np.concatenate([np.ones(len(member)), np.zeros(len(nonmember))])
    clf = SVC(C=C, gamma="auto", kernel="rbf").fit(x, y)
    return float(1.0 - clf.predict(np.asarray(target).reshape(-1, 1)).mean())


def mia_efficacy(outcome: Outcome, which: ModelName, C: float = 3.0) -> float:
    """:func:`svc_nonmember_rate` on the true-class confidences of one of the outcome's models
    (the D_r subset drawn from the job's seed, so every model of a seed gets the same one)."""
    parts = outcome.partitions_for(which)
    conf = {p: true_class_confidence(outcome.logits(which, p), parts.targets(p)) for p in ("retain", "test", "forget")}
    return svc_nonmember_rate(conf["retain"], conf["test"], conf["forget"], np.random.default_rng(outcome.seed), C)


class EntropyMIA(Evaluator):
    """``entropy_mia_member_rate``: share of D_f that an entropy attack fit on D_r (member)
    versus D_t (non-member) calls member (Foster et al. 2024 "SSD"; the JiT paper's MIA column).
    Compare with GoldModel's row: a good unlearner matches gold, not zero."""

    metric_targets = {"entropy_mia_member_rate": as_gold()}

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        h = {p: softmax_entropy(outcome.logits("unlearned", p)) for p in ("retain", "test", "forget")}
        return {"entropy_mia_member_rate": entropy_member_rate(h["retain"], h["test"], h["forget"])}


class MIAEfficacy(Evaluator):
    """``mia_efficacy``: share of D_f that a confidence SVC calls non-member (Fan et al. 2024,
    "SalUn", ICLR; higher means more forgotten). The SVC (RBF, ``C`` 3, gamma "auto") is fit on
    the true-class confidence of a random |D_t| subset of D_r (member) versus D_t (non-member)."""

    metric_targets = {"mia_efficacy": as_gold()}

    def __init__(self, C: PositiveFloat = 3.0):
        self.C = C

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        return {"mia_efficacy": mia_efficacy(outcome, "unlearned", self.C)}
