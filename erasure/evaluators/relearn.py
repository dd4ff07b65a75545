"""RelearnTime: how quickly fine-tuning on the forget set brings its accuracy back."""
from __future__ import annotations

import copy

import torch
from torch import nn

from erasure.core.factory import instantiate
from erasure.core.params import Fraction, PositiveInt
from erasure.data.partitions import Partitions
from erasure.evaluators.base import Evaluator, Outcome
from erasure.models.training import TrainingRecipe, accuracy
from erasure.results.targets import as_gold, informational


def relearn_steps(model: nn.Module, partitions: Partitions, target: float, recipe: TrainingRecipe,
                  max_steps: int, generator: torch.Generator, batch_size: int | None = None) -> tuple[int, bool]:
    """Optimizer steps of fine-tuning a copy of ``model`` on the forget set (the recipe's optimizer
    and loss) until its forget accuracy reaches ``target``; ``(max_steps, True)`` if it never does."""
    model = copy.deepcopy(model)
    optimizer = instantiate(recipe.optimizer, "optimizer", model.parameters())
    loss_fn = instantiate(recipe.loss, "loss")
    steps = 0
    if accuracy(model, partitions, "forget") >= target:
        return 0, False
    while steps < max_steps:
        for x, y in partitions.batches("forget", batch_size or recipe.batch_size, shuffle=True, generator=generator):
            model.train()
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()
            steps += 1
            if accuracy(model, partitions, "forget") >= target:
                return steps, False
            if steps >= max_steps:
                break
    return max_steps, True


class RelearnTime(Evaluator):
    """``relearn_steps``: optimizer steps of fine-tuning on D_f (the original's optimizer, loss and
    batch size) until forget accuracy reaches (1 − ``alpha``) × the original's; ``relearn_capped``
    is 1 when ``max_steps`` ran out (``relearn_steps`` then equals the cap and is a lower bound).
    ``relearn_steps_gold`` (and ``relearn_gold_capped``) is the same for the gold model, the
    denominator of AIN (Chundawat et al., "Zero-shot machine unlearning", IEEE TIFS 2023, and
    aiim-research/ERASURE use ``alpha`` 0.05, the default; 0 means the original's own accuracy).
    Fewer steps than gold's means residual knowledge of the forget set. Accuracy is checked after
    every step (one forward pass over D_f, eval mode) with a fresh optimizer; ERASURE counts epochs
    instead, reading the running training accuracy and continuing the model's own optimizer."""

    uses_gold = True
    metric_targets = {"relearn_steps": as_gold(0, None), "relearn_capped": informational(None, 0, 1),
                      "relearn_steps_gold": informational(), "relearn_gold_capped": informational(None, 0, 1)}

    contract_config = {"parameters": {"max_steps": 50}}

    def __init__(self, max_steps: PositiveInt = 1000, alpha: Fraction = 0.05, batch_size: PositiveInt | None = None):
        self.max_steps = max_steps
        self.alpha = alpha
        self.batch_size = batch_size

    def _steps(self, outcome: Outcome, which: str) -> tuple[int, bool]:
        original = outcome.logits("original", "forget")
        target = (1 - self.alpha) * float((original.argmax(1) == outcome.targets("forget")).float().mean())
        generator = torch.Generator().manual_seed(outcome.seed)
        return relearn_steps(outcome.model_named(which), outcome.partitions_for(which), target,
                             outcome.context.recipe, self.max_steps, generator, self.batch_size)

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        steps, capped = self._steps(outcome, "unlearned")
        key = ("relearn_gold", self.max_steps, self.alpha, self.batch_size)
        if key not in outcome.shared_memo:
            outcome.shared_memo[key] = self._steps(outcome, "gold")
        gold_steps, gold_capped = outcome.shared_memo[key]
        return {"relearn_steps": steps, "relearn_capped": float(capped),
                "relearn_steps_gold": gold_steps, "relearn_gold_capped": float(gold_capped)}
