"""Identity: the "no unlearning" row."""
from torch import nn

from erasure.unlearners.base import TASKS, Unlearner, UnlearningContext


class Identity(Unlearner):
    """Returns the original model unchanged: the baseline every method must beat."""

    tasks = TASKS

    def __init__(self) -> None:
        pass

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        return model
