"""NegGrad: gradient ascent on the forget set."""
from torch import nn

from erasure.core.params import IntRange, LogUniform, MethodOptimizerSpec, PositiveFloat, PositiveInt
from erasure.unlearners.base import (TASKS, TrainingUnlearner, UnlearningContext, build_optimizer,
                                     task_loss)

ADAM = {"class": "Adam"}


class NegGrad(TrainingUnlearner):
    """Minimise −CE on D_f (Golatkar et al. 2020 baseline).

    Defaults are ERASURE's NegGrad (aiim-research/ERASURE, erasure/unlearners/NegGrad.py, after
    ndb796/MachineUnlearning): 5 epochs, Adam with torch's default settings, so lr 1e-3;
    ``batch_size`` None uses the original recipe's. Very sensitive to the learning rate:
    too high destroys the model, too low does nothing.
    """

    tasks = TASKS
    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"epochs": IntRange(1, 10), "lr": LogUniform(1e-5, 1e-2)}

    def __init__(self, epochs: PositiveInt = 5, lr: PositiveFloat = 1e-3, batch_size: PositiveInt | None = None,
                 optimizer: MethodOptimizerSpec | None = None):
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        optimizer = build_optimizer(self.optimizer, ADAM, model.parameters(), self.lr)
        model.train()
        for _ in range(self.epochs):
            for x, y in ctx.batches("forget", self.batch_size):
                optimizer.zero_grad(set_to_none=True)
                (-task_loss(model(x), y)).backward()
                optimizer.step()
            ctx.end_epoch(model)
        return model.eval()
