"""CF-k: catastrophic forgetting of the last k layers (fine-tune them on D_r, freeze the rest)."""
from torch import nn

from erasure.core.params import IntRange, LogUniform, MethodOptimizerSpec, PositiveFloat, PositiveInt
from erasure.unlearners._common import finetune_layers, last_layers
from erasure.unlearners.base import TASKS, TrainingUnlearner, UnlearningContext, build_optimizer
from erasure.unlearners.finetuning import FINETUNE_SGD


class CFk(TrainingUnlearner):
    """Freeze every layer except the last ``k`` layers *in forward order* and fine-tune those on D_r
    (Goel et al., "Towards Adversarial Evaluations for Inexact Machine Unlearning", 2022;
    reference code shash42/Evaluating-Inexact-Unlearning, src/methods.py ``cat_forget_finetune``).

    A layer is a computation layer with the normalisation layers that follow it
    (:func:`erasure.models.base.layer_groups`): on a ResNet, k=2 is the head and the last
    convolution with its batch norm, as the reference counts them. Layers are ordered by the
    forward pass, never by attribute order. Frozen layers are kept in eval mode, so their
    batch-norm statistics stay bit-identical too (the reference updates them).
    Defaults: k 1 (the reference's scripts use k 1, 3, 5, 7); training as :class:`FineTuning`
    (SSD's fine-tuning baseline: 5 epochs, SGD with momentum 0.9 and weight decay 5e-4 at
    lr 0.02; the reference trains 62 epochs of SGD, weight decay 5e-5, under cosine annealing
    with warm restarts); ``batch_size`` None uses the original recipe's.
    """

    tasks = TASKS
    #: the reference trains on the retain loader cut from the training set's loader, with its
    #: pad-crop-flip transforms (src/unlearn.py get_loaders(..., transform_tr=True); src/utils.py)
    augments = True
    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"k": IntRange(1, 3), "epochs": IntRange(1, 10), "lr": LogUniform(1e-3, 1e-1)}

    def __init__(self, k: PositiveInt = 1, epochs: PositiveInt = 5, lr: PositiveFloat = 0.02,
                 batch_size: PositiveInt | None = None, optimizer: MethodOptimizerSpec | None = None):
        self.k = k
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer

    def trained_layers(self, model: nn.Module, ctx: UnlearningContext) -> list[nn.Module]:
        """The modules to train: those of the last ``k`` layers in forward order."""
        return [m for _, m in last_layers(model, ctx, self.k)]

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        layers = self.trained_layers(model, ctx)
        return finetune_layers(model, ctx, layers, self.epochs,
                               lambda params: build_optimizer(self.optimizer, FINETUNE_SGD, params, self.lr),
                               self.batch_size or ctx.recipe.batch_size)
