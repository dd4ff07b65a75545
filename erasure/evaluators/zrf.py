"""ZRF: the zero retrain forgetting score (Chundawat et al., "Can bad teaching induce forgetting?", AAAI 2023)."""
from __future__ import annotations

import math

import torch

from erasure.evaluators.base import Evaluator, Outcome
from erasure.evaluators.gold_distance import js_divergence
from erasure.models.training import predict_logits
from erasure.results.targets import as_gold


class ZRF(Evaluator):
    """``zrf`` = 1 − mean JS(unlearned, randomly initialised model) on D_f, JS in nats as in the
    authors' code (so the score lies in [1 − ln 2, 1]; 1 = behaves like a random model on D_f).
    The random model is a fresh initialisation of the config's architecture, seeded from the job."""

    metric_targets = {"zrf": as_gold(1 - math.log(2), 1)}

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(outcome.seed)
            random_model = outcome.context.new_model()
        parts = outcome.partitions
        random_logits = predict_logits(random_model, parts, "forget")
        return {"zrf": 1.0 - float(js_divergence(outcome.logits("unlearned", "forget"), random_logits).mean())}
