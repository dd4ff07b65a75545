"""The contract over every registered unlearner and evaluator (``pytest --pyargs erasure.testing``).

Built-ins and installed plugins (``erasure.plugins`` entry points) are covered; test ids carry
the component's name. Components that handle multi-label targets keep it on multi-label data too.
"""
import pytest

from erasure.core.registry import load_builtins, registry
from erasure.data.dataset import MULTI_LABEL
from erasure.testing.contract import check_evaluator, check_unlearner

load_builtins()


@pytest.mark.parametrize("name", sorted(registry("unlearner")))
def test_unlearner_contract(name: str) -> None:
    check_unlearner(name)


@pytest.mark.parametrize("name", sorted(registry("evaluator")))
def test_evaluator_contract(name: str) -> None:
    check_evaluator(name)


@pytest.mark.parametrize("name", sorted(n for n, c in registry("unlearner").items() if MULTI_LABEL in c.tasks))
def test_unlearner_contract_on_multi_label_data(name: str) -> None:
    check_unlearner(name, task=MULTI_LABEL)


@pytest.mark.parametrize("name", sorted(n for n, c in registry("evaluator").items() if MULTI_LABEL in c.tasks))
def test_evaluator_contract_on_multi_label_data(name: str) -> None:
    check_evaluator(name, task=MULTI_LABEL)
