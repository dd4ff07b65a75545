"""ShadowMIA: the shadow-model membership inference attack of Shokri et al. ("Membership Inference
Attacks Against Machine Learning Models", IEEE S&P 2017), as ERASURE runs it against unlearning
(aiim-research/ERASURE erasure/evaluations/MIA/MembershipInference.py and mia.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from erasure.core.params import PositiveInt
from erasure.core.seeding import derive_seed
from erasure.evaluators.attack_models import AttackModel, attack_classifier, quiet_convergence
from erasure.evaluators.base import Evaluator, Outcome, Undefined
from erasure.results.targets import as_gold
from erasure.models.training import predict_logits

Features = Literal["probabilities", "logits"]


def output_features(logits: Tensor, kind: Features = "probabilities") -> np.ndarray:
    """What the attack sees of a model's output: its probability vector (Shokri) or its logits (ERASURE)."""
    z = logits.double()
    return (torch.softmax(z, 1) if kind == "probabilities" else z).cpu().numpy()


@dataclass
class PerClassAttack:
    """One binary attack model per true class (member = 1), and one fitted on every class for
    the classes whose attack data lacks members or non-members."""

    models: dict[int, Any]
    fallback: Any

    def member(self, features: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """True where the attack calls a sample a member of the model's training set."""
        out = np.zeros(len(classes), dtype=bool)
        for c in np.unique(classes):
            rows = classes == c
            out[rows] = self.models.get(int(c), self.fallback).predict(features[rows]) == 1
        return out


def fit_per_class_attack(features: np.ndarray, classes: np.ndarray, membership: np.ndarray,
                         attack: AttackModel = "mlp", seed: int = 0) -> PerClassAttack:
    """Fit Shokri's attack: for each class c, a classifier telling the shadow models' outputs on
    their own training samples of class c (``membership`` 1) from those on unseen ones (0)."""
    def fit(rows: np.ndarray) -> Any:
        with quiet_convergence():
            return attack_classifier(attack, seed).fit(features[rows], membership[rows])

    models = {int(c): fit(classes == c) for c in np.unique(classes)
              if len(np.unique(membership[classes == c])) == 2}
    return PerClassAttack(models, fit(np.ones(len(classes), dtype=bool)))


def forgetting_rate(member_unlearned: np.ndarray, member_original: np.ndarray) -> float:
    """ERASURE's forgetting rate (after Ma et al. 2022, "Learn to forget", IEEE TDSC): how many more
    forget samples the attack calls non-member after unlearning than before, over the members
    before: (#non-members(unlearned) − #non-members(original)) / (#members(original) + 0.01)."""
    gained = float((~member_unlearned).sum()) - float((~member_original).sum())
    return gained / (float(member_original.sum()) + 0.01)


class ShadowMIA(Evaluator):
    """Shokri et al.'s attack with ``num_shadows`` shadow models and one attack model per class.

    The attacker's data is the benchmark's train and test data together (ERASURE's default draws
    the shadow data from the training set too). Shadow model k trains, with the original's
    architecture, recipe and its own seed, on ``shadow_size`` samples drawn from it at random
    (default |D_train|: Shokri's shadow training sets have the target's size; ERASURE's are 40%
    of D_train), through the model cache. Its outputs on n of its training samples are "in", on
    n samples it never saw "out" (n = the smaller of the two sets, so the attack data is
    balanced). Per true class, an attack model (``attack``: a small neural network, as in both,
    or logistic regression) learns in versus out from the output vectors (``features``:
    probabilities as in Shokri, or the logits that ERASURE passes). Applied to the unlearned model:

    - ``shadow_mia_member_rate_forget``: share of D_f called member (compare with gold's row);
    - ``shadow_mia_member_rate_test``: share of D_t called member (the attack's false positives);
    - ``shadow_mia_forgetting_rate``: ERASURE's forgetting rate, from the original's calls on D_f
      to the unlearned model's (:func:`forgetting_rate`).

    Shadow and attack models are shared by every unlearner of a seed. Cost: ``num_shadows``
    trainings per seed (cached across runs) and ``num_classes`` attack fits.
    """

    metric_targets = {"shadow_mia_member_rate_forget": as_gold(), "shadow_mia_member_rate_test": as_gold(),
                      "shadow_mia_forgetting_rate": as_gold(None, None)}

    contract_config = {"parameters": {"num_shadows": 2, "attack": "logistic"}}

    def __init__(self, num_shadows: PositiveInt = 5, attack: AttackModel = "mlp", features: Features = "probabilities",
                 shadow_size: PositiveInt | None = None):
        self.num_shadows = num_shadows
        self.attack = attack
        self.features = features
        self.shadow_size = shadow_size

    def attack_data(self, outcome: Outcome) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features, classes, membership) of every shadow model's n seen and n unseen samples."""
        if outcome.train_reference is None:
            raise RuntimeError("ShadowMIA needs the runner's train_reference hook")
        parts = outcome.reference_partitions
        pool = torch.cat([parts["train"], parts["test"]])
        size = self.shadow_size or len(parts["train"])
        if size >= len(pool):
            raise ValueError(f"shadow_size {size} must be smaller than the attacker's data (train and test: "
                             f"{len(pool)} samples), so that each shadow model has unseen samples")
        n = min(size, len(pool) - size)
        rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for k in range(self.num_shadows):
            seed = derive_seed(outcome.seed, "shadow", str(k))
            rng = np.random.default_rng(seed)
            order = pool[torch.as_tensor(rng.permutation(len(pool)), device=pool.device)]
            shadow = outcome.train_reference("shadow", order[:size].sort().values, seed)
            seen = order[torch.as_tensor(rng.choice(size, n, replace=False), device=pool.device)]
            for index, label in ((seen, 1), (order[size:size + n], 0)):
                logits = predict_logits(shadow, parts, index)
                rows.append((output_features(logits, self.features), parts.dataset.targets[index].cpu().numpy(),
                             np.full(len(index), label)))
        return tuple(np.concatenate(column) for column in zip(*rows))  # type: ignore[return-value]

    def fitted_attack(self, outcome: Outcome) -> PerClassAttack:
        key = ("shadow_mia", self.num_shadows, self.attack, self.features, self.shadow_size)
        if key not in outcome.shared_memo:
            outcome.shared_memo[key] = fit_per_class_attack(*self.attack_data(outcome), self.attack, outcome.seed)
        return outcome.shared_memo[key]

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        if outcome.partitions.size("forget") == 0:
            reason = Undefined("the forget set has no samples")
            return {"shadow_mia_member_rate_forget": reason, "shadow_mia_member_rate_test": reason,
                    "shadow_mia_forgetting_rate": reason}
        attack = self.fitted_attack(outcome)

        def member(which: str, partition: str) -> np.ndarray:
            parts = outcome.partitions_for(which)
            features = output_features(outcome.logits(which, partition), self.features)  # type: ignore[arg-type]
            return attack.member(features, parts.targets(partition).cpu().numpy())

        forget = member("unlearned", "forget")
        return {"shadow_mia_member_rate_forget": float(forget.mean()),
                "shadow_mia_member_rate_test": float(member("unlearned", "test").mean()),
                "shadow_mia_forgetting_rate": forgetting_rate(forget, member("original", "forget"))}
