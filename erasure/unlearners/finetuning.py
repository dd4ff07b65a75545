"""FineTuning: continue training on the retain set (catastrophic forgetting of D_f)."""
from torch import nn

from erasure.core.params import IntRange, LogUniform, MethodOptimizerSpec, PositiveFloat, PositiveInt
from erasure.unlearners.base import (TASKS, TrainingUnlearner, UnlearningContext, build_optimizer,
                                     task_loss)

#: SSD's fine-tuning baseline (if-loops/selective-synaptic-dampening, src/utils.py ``fit_one_cycle``).
FINETUNE_SGD = {"class": "SGD", "parameters": {"momentum": 0.9, "weight_decay": 5e-4}}


class FineTuning(TrainingUnlearner):
    """Fine-tune on D_r (Golatkar et al. 2020 baseline).

    Defaults are the SSD repository's ``finetune`` baseline (if-loops/selective-synaptic-dampening,
    src/forget_*_strategies.py → src/utils.py ``fit_one_cycle``): 5 epochs, SGD with momentum 0.9
    and weight decay 5e-4 at lr 0.02, no schedule. ``batch_size`` None uses the original recipe's.
    """

    tasks = TASKS
    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"epochs": IntRange(1, 10), "lr": LogUniform(1e-3, 1e-1)}

    def __init__(self, epochs: PositiveInt = 5, lr: PositiveFloat = 0.02, batch_size: PositiveInt | None = None,
                 optimizer: MethodOptimizerSpec | None = None):
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        optimizer = build_optimizer(self.optimizer, FINETUNE_SGD, model.parameters(), self.lr)
        model.train()
        for _ in range(self.epochs):
            for x, y in ctx.batches("retain", self.batch_size):
                optimizer.zero_grad(set_to_none=True)
                task_loss(model(x), y).backward()
                optimizer.step()
            ctx.end_epoch(model)
        return model.eval()
