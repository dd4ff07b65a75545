"""FineTuning: continue training on the retain set (catastrophic forgetting of D_f)."""
from torch import nn

from erasure.core.params import MethodOptimizerSpec, PositiveFloat, PositiveInt
from erasure.unlearners.base import SGD_MOMENTUM, Unlearner, UnlearningContext, build_optimizer, cross_entropy


class FineTuning(Unlearner):
    """Fine-tune on D_r (Golatkar et al. 2020 baseline).

    Defaults: 5 epochs, SGD (momentum 0.9) at lr 0.02, as in the SSD repository's
    baseline; ``batch_size`` None uses the original recipe's.
    """

    def __init__(self, epochs: PositiveInt = 5, lr: PositiveFloat = 0.02, batch_size: PositiveInt | None = None,
                 optimizer: MethodOptimizerSpec | None = None):
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        optimizer = build_optimizer(self.optimizer, SGD_MOMENTUM, model.parameters(), self.lr)
        model.train()
        for _ in range(self.epochs):
            for x, y in ctx.batches("retain", self.batch_size):
                optimizer.zero_grad(set_to_none=True)
                cross_entropy(model, x, y).backward()
                optimizer.step()
        return model.eval()
