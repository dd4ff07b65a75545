"""CF-k: catastrophic forgetting of the last k layers (fine-tune them on D_r, freeze the rest)."""
from torch import nn

from erasure.core.params import MethodOptimizerSpec, PositiveFloat, PositiveInt
from erasure.unlearners._common import finetune_layers, last_layers
from erasure.unlearners.base import SGD_MOMENTUM, Unlearner, UnlearningContext, build_optimizer


class CFk(Unlearner):
    """Freeze every layer except the last ``k`` parametrised layers *in forward order* and fine-tune
    those on D_r (Goel et al., "Towards Adversarial Evaluations for Inexact Machine Unlearning", 2022).

    Layers are the modules that own parameters, ordered by the forward pass
    (:func:`erasure.models.base.parametrized_layers`), never by attribute order. Frozen
    layers are kept in eval mode, so batch-norm statistics stay bit-identical too.
    Defaults: k 1 (the paper sweeps k 1..3), 5 epochs, SGD (momentum 0.9) at lr 0.02
    (the fine-tuning baseline's); ``batch_size`` None uses the original recipe's.
    """

    def __init__(self, k: PositiveInt = 1, epochs: PositiveInt = 5, lr: PositiveFloat = 0.02,
                 batch_size: PositiveInt | None = None, optimizer: MethodOptimizerSpec | None = None):
        self.k = k
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer

    def trained_layers(self, model: nn.Module, ctx: UnlearningContext) -> list[nn.Module]:
        """The layers to train: the last ``k`` in forward order."""
        return [m for _, m in last_layers(model, ctx, self.k)]

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        layers = self.trained_layers(model, ctx)
        return finetune_layers(model, ctx, layers, self.epochs,
                               lambda params: build_optimizer(self.optimizer, SGD_MOMENTUM, params, self.lr),
                               self.batch_size or ctx.recipe.batch_size)
