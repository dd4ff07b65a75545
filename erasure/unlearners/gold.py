"""GoldModel: retraining from scratch on the retain set, the reference for every method."""
from torch import nn

from erasure.unlearners.base import TASKS, Unlearner, UnlearningContext


class GoldModel(Unlearner):
    """Retrain from scratch on D_r with the original's recipe and the same seed.

    The runner trains this model once per seed (through the model cache) and
    shares it with the evaluators that need a reference; listing GoldModel as
    an unlearner reports that model, with its training cost as run time.
    """

    uses_gold = True
    tasks = TASKS

    def __init__(self) -> None:
        pass

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        return ctx.reuse_gold()

