"""The ``tuning`` block of a config. Its settings live in :mod:`erasure.execution.settings`, beside
``execution``'s, because the runner reads them (and the layers point one way: execution never
imports erasure.tuning); they are re-exported here for the tuning protocol."""
from erasure.execution.settings import NAMED_OBJECTIVES, Tuning

__all__ = ["NAMED_OBJECTIVES", "Tuning"]
