"""AdvancedNegGrad (NegGrad+): descend on the retain set while ascending on the forget set."""
import itertools

from torch import nn

from erasure.core.params import OpenFraction, MethodOptimizerSpec, PositiveFloat, PositiveInt
from erasure.unlearners.base import SGD_MOMENTUM, Unlearner, UnlearningContext, build_optimizer, cross_entropy


class AdvancedNegGrad(Unlearner):
    """Minimise α·CE(D_r) − (1−α)·CE(D_f), a batch of each per step (Kurmanji et al. 2023; Choi & Na 2023).

    An epoch is one pass over D_r; forget batches are cycled alongside.
    Defaults: α 0.999, 5 epochs, SGD (momentum 0.9) at lr 0.01.
    """

    def __init__(self, alpha: OpenFraction = 0.999, epochs: PositiveInt = 5, lr: PositiveFloat = 0.01,
                 batch_size: PositiveInt | None = None, optimizer: MethodOptimizerSpec | None = None):
        self.alpha = alpha
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        optimizer = build_optimizer(self.optimizer, SGD_MOMENTUM, model.parameters(), self.lr)
        model.train()
        for _ in range(self.epochs):
            forget = itertools.cycle(list(ctx.batches("forget", self.batch_size)))
            for (xr, yr), (xf, yf) in zip(ctx.batches("retain", self.batch_size), forget):
                optimizer.zero_grad(set_to_none=True)
                loss = self.alpha * cross_entropy(model, xr, yr) - (1 - self.alpha) * cross_entropy(model, xf, yf)
                loss.backward()
                optimizer.step()
        return model.eval()
