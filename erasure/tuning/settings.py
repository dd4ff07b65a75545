"""The ``tuning`` block of a config: how every unlearner with a search space is tuned before evaluation."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from erasure.core.errors import ConfigError
from erasure.core.params import NonNegativeInt, OpenFraction, PositiveFloat, PositiveInt

#: Objectives with a name; any other is a metric with a direction, "accuracy_forget:min".
NAMED_OBJECTIVES = ("gold_gap", "gold_free")


@dataclass
class Tuning:
    """The equal-budget protocol: every unlearner that has a search space gets ``trials`` trials.

    ``objective``: ``gold_gap`` (the mean range-normalised distance to the gold model over the
    metrics whose target is gold; default), ``gold_free`` (no retrained model: forget accuracy at
    or below held-out accuracy on the forgotten data's distribution, retain accuracy kept; see
    docs/tuning.md), or ``METRIC:min`` / ``METRIC:max``. ``seeds``: tuning seeds, disjoint from the
    evaluation ``seeds`` (other originals, other splits). Trials run on a validation split of
    ``validation_fraction`` of train (the test split is never read). ``sampler``: ``tpe`` or
    ``random``, seeded by ``sampler_seed``. ``max_epochs`` caps every epoch-like dimension of every
    space alike; ``max_time_fraction`` fails a trial whose unlearning took longer than that share of
    gold's training time; ``prune`` lets Optuna stop trials early on the per-epoch values a method
    logs. ``parallel``: trials of one method asked (and run) together; it shapes the search, so it
    is part of the config, not taken from the executor: serial, local and Ray choose the same
    parameters.
    """

    trials: PositiveInt = 20
    objective: str = "gold_gap"
    seeds: list[NonNegativeInt] = field(default_factory=lambda: [1000])
    sampler: Literal["tpe", "random"] = "tpe"
    sampler_seed: NonNegativeInt = 0
    validation_fraction: OpenFraction = 0.2
    max_epochs: PositiveInt | None = None
    max_time_fraction: PositiveFloat | None = None
    prune: bool = False
    parallel: PositiveInt = 2

    def check(self) -> None:
        if not self.seeds:
            raise ConfigError("give at least one tuning seed", "seeds")
        if self.objective not in NAMED_OBJECTIVES:
            metric, _, direction = self.objective.rpartition(":")
            if not metric or direction not in ("min", "max"):
                raise ConfigError(f"expected {', '.join(NAMED_OBJECTIVES)} or METRIC:min / METRIC:max, got "
                                  f"{self.objective!r}", "objective")

    @property
    def metric(self) -> tuple[str, str] | None:
        """(metric, "min"|"max") of a metric objective, else None."""
        if self.objective in NAMED_OBJECTIVES:
            return None
        metric, _, direction = self.objective.rpartition(":")
        return metric, direction

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

