"""The contract every component keeps, as a library: test your own classes the way the package tests its own.

In your test suite::

    from erasure.testing import check_unlearner, check_evaluator

    def test_my_unlearner():
        check_unlearner(MyUnlearner, parameters={"epochs": 1})

or run the parametrized contract over every registered component (built-ins, installed plugins,
and modules named with ``--import``-style ``imports``)::

    pytest --pyargs erasure.testing
"""
from erasure.testing.contract import TINY_CONFIG, check_evaluator, check_unlearner, tiny_config

__all__ = ["TINY_CONFIG", "check_evaluator", "check_unlearner", "tiny_config"]
