"""One contract test for every registered unlearner and evaluator (test ids carry the name).

The contract lives in :mod:`erasure.testing` so that contributors run the same checks on their
own classes (``check_unlearner(MyClass)``, ``pytest --pyargs erasure.testing``); here it runs over
every built-in component, and below it is shown to catch the faults it exists for.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from erasure.testing import check_evaluator, check_unlearner
from erasure.testing.test_contract import (  # noqa: F401
    test_evaluator_contract, test_evaluator_contract_on_multi_label_data, test_unlearner_contract,
    test_unlearner_contract_on_multi_label_data,
)
from erasure.evaluators.base import Evaluator, Outcome
from erasure.unlearners.base import Unlearner, UnlearningContext


class Nondeterministic(Unlearner, register=False):
    def __init__(self) -> None:
        pass

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.rand(1, generator=torch.Generator().manual_seed(torch.seed() % 2**31)).item())
        return model


class ForgetsItsParameter(Unlearner, register=False):
    def __init__(self, epochs: int = 2):
        self.epochs = epochs

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        self.epochs -= 1
        return model


class TouchesTheOriginal(Evaluator, register=False):
    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        with torch.no_grad():
            next(outcome.original.parameters()).add_(1.0)
        return {"x": 1.0}


@pytest.mark.parametrize("cls, fault", [(Nondeterministic, "two runs under one seed"),
                                        (ForgetsItsParameter, "parameters")])
def test_the_unlearner_contract_catches_faults(cls, fault):
    with pytest.raises(AssertionError, match=fault):
        check_unlearner(cls)


def test_the_evaluator_contract_catches_faults():
    from erasure.testing.contract import _WORLDS

    with pytest.raises(AssertionError, match="the original model"):
        check_evaluator(TouchesTheOriginal)
    _WORLDS.clear()  # that world's original was changed on purpose


@pytest.mark.parametrize("kind,doc", [("unlearner", "docs/methods.md"), ("evaluator", "docs/methods.md"),
                                      ("unlearner", "docs/fidelity.md"), ("evaluator", "docs/fidelity.md")])
def test_every_built_in_has_a_row_in_the_docs(kind, doc):
    """docs/methods.md's tables list every built-in; docs/fidelity.md says what each is faithful to."""
    import re
    from pathlib import Path

    from erasure.core.registry import load_builtins, registry

    load_builtins()
    text = (Path(__file__).resolve().parents[1] / doc).read_text()
    rows = set(re.findall(r"^\| `?([A-Za-z][A-Za-z0-9]*)`?", text, re.M))
    built_in = {name for name, cls in registry(kind).items() if cls.__module__.startswith("erasure.")}
    assert not built_in - rows, f"{doc} has no row for {sorted(built_in - rows)}"
