"""Cascade: unlearners run one after another on one model (a saliency mask then random labels, impair then repair)."""
from __future__ import annotations

from typing import Annotated, Any, ClassVar

from torch import nn

from erasure.core.errors import ConfigError, join_path
from erasure.core.factory import build
from erasure.core.params import Spec
from erasure.unlearners.base import Unlearner, UnlearningContext

UnlearnerSpec = Annotated[dict, Spec("unlearner")]


class Cascade(Unlearner):
    """Run the unlearner specs ``unlearners`` in sequence on one model, each on the model the one
    before returned (ERASURE's ``Cascade``).

    Each spec is checked when the config is built, its errors naming the nested JSON path
    (``unlearners[2].parameters.unlearners[0].parameters.lr``). Step ``i`` runs in
    ``ctx.for_step(i)``: a context reseeded from the job's seed and the step index, with the same
    data, reference models and gradient masks, so a ``SaliencyMask`` step hands its mask to the
    later steps by name (``"gradient_mask": "saliency"``) without a file. Rows a step logs are
    named ``step<i>_<metric>`` (``step1_selected_epoch``). When a step sets the partitions the
    evaluators see (``WassersteinBarycenter``), the last such step's are used; a step's own run
    time (a ``GoldModel`` step's training cost) is not reported, the Cascade's measured time is.
    """

    contract_config: ClassVar[dict[str, Any]] = {"parameters": {"unlearners": [
        {"class": "SaliencyMask", "parameters": {"ratio": 0.3}},
        {"class": "RandomLabels", "parameters": {"epochs": 1, "lr": 0.01, "gradient_mask": "saliency"}},
        {"class": "FineTuning", "parameters": {"epochs": 2, "lr": 0.01, "trainable_layers": 1,
                                               "select": "validation_accuracy"}},
    ]}}

    def __init__(self, unlearners: list[UnlearnerSpec]):
        self.unlearners = unlearners

    def check(self) -> None:
        if not self.unlearners:
            raise ConfigError("expected at least one unlearner spec", "unlearners")
        self._steps = [build(spec, "unlearner", join_path("unlearners", i)) for i, spec in enumerate(self.unlearners)]

    def steps(self) -> list[Unlearner]:
        """The steps, built (and checked) from their specs when the config is built, where the
        config's ``imports`` may be named by dotted paths."""
        if getattr(self, "_steps", None) is None:
            self.check()
        return self._steps

    @property
    def uses_gold(self) -> bool:  # type: ignore[override]
        return any(step.uses_gold for step in self.steps())

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        for i, step in enumerate(self.steps()):
            step_ctx = ctx.for_step(i)
            model = step.unlearn(model, step_ctx)
            if not isinstance(model, nn.Module):
                raise TypeError(f"step {i} ({type(step).__name__}) returned {type(model).__name__}, expected an nn.Module")
            ctx.evaluation_partitions = step_ctx.evaluation_partitions or ctx.evaluation_partitions
        return model
