"""ZRF: the zero retrain forgetting score (Chundawat et al., "Can bad teaching induce forgetting?
Unlearning in deep networks using an incompetent teacher", AAAI 2023).

Reference code: vikram2000b/bad-teaching-unlearning, ``metrics.py`` (``JSDiv``,
``UnLearningScore``; copied into if-loops/selective-synaptic-dampening, ``src/metrics.py``,
which produced the SSD and JiT tables).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from erasure.core.params import PartitionName
from erasure.evaluators.base import Evaluator, Outcome
from erasure.evaluators.gold_distance import js_divergence
from erasure.models.training import predict_logits
from erasure.results.targets import as_gold

Divergence = Literal["reference", "js"]


def reference_divergence(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """The authors' ``JSDiv``: 0.5·kl_div(log p, m) + 0.5·kl_div(log q, m) with m = (p + q)/2 and
    torch's default reduction "mean" over rows *and* classes, i.e. the mean over rows of
    (KL(m ‖ p) + KL(m ‖ q)) / (2C): a reversed KL divided by the number of classes C, not the JS.
    log p comes from log-softmax, so it stays finite where the softmax underflows to 0."""
    logp, logq = torch.log_softmax(p_logits.float(), 1), torch.log_softmax(q_logits.float(), 1)
    m = (logp.exp() + logq.exp()) / 2
    # kl_div(input, target, reduction="mean") = mean over all elements of target·(log target − input)
    return (0.5 * (torch.xlogy(m, m) - m * logp) + 0.5 * (torch.xlogy(m, m) - m * logq)).mean()


def zrf_score(unlearned_logits: Tensor, random_logits: Tensor, divergence: Divergence = "reference") -> float:
    """1 − divergence between the unlearned and the random model's outputs on the same samples:
    ``reference`` (the authors' code) or ``js`` (the paper: mean Jensen–Shannon divergence, nats)."""
    if divergence == "js":
        return 1.0 - float(js_divergence(unlearned_logits, random_logits).mean())
    return 1.0 - float(reference_divergence(unlearned_logits, random_logits))


class ZRF(Evaluator):
    """``zrf`` = 1 − divergence(unlearned, randomly initialised model) on ``partition``; higher means
    closer to a random model (compare with GoldModel's row).

    ``divergence``: ``reference`` (default) is what the authors' code computes and what every
    published ZRF value (Bad Teaching, SSD, JiT) comes from: the reversed KL to the mixture divided
    by the number of classes, in (−∞, 1] (unbounded below where one model gives almost no mass to
    a class the other favours); ``js`` is the paper's definition, 1 − mean JS divergence in nats,
    in [1 − ln 2, 1].
    ``partition``: ``forget`` (default; the paper's D_f, and the code's for random forgetting),
    ``forget_test`` (the test samples of the forgotten classes, which the code uses for class
    forgetting) or any other partition, a named one of ``data.partitions`` too. The random model is a fresh initialisation of the config's architecture, seeded
    from the job's seed.
    """

    metric_targets = {"zrf": as_gold(None, 1)}

    def __init__(self, divergence: Divergence = "reference", partition: PartitionName = "forget"):
        self.divergence = divergence
        self.partition = partition

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        parts = outcome.partitions
        if self.partition not in parts or parts.size(self.partition) == 0:
            raise ValueError(f"ZRF partition {self.partition!r} is empty here "
                             "(forget_test exists for class and group forgetting only)")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(outcome.seed)
            random_model = outcome.context.new_model()
        random_logits = predict_logits(random_model, parts, self.partition)
        return {"zrf": zrf_score(outcome.logits("unlearned", self.partition), random_logits, self.divergence)}
