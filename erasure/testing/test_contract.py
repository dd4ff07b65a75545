"""The contract over every registered unlearner and evaluator (``pytest --pyargs erasure.testing``).

Built-ins and installed plugins (``erasure.plugins`` entry points) are covered; test ids carry
the component's name.
"""
import pytest

from erasure.core.registry import load_builtins, registry
from erasure.testing.contract import check_evaluator, check_unlearner

load_builtins()


@pytest.mark.parametrize("name", sorted(registry("unlearner")))
def test_unlearner_contract(name: str) -> None:
    check_unlearner(name)


@pytest.mark.parametrize("name", sorted(registry("evaluator")))
def test_evaluator_contract(name: str) -> None:
    check_evaluator(name)
