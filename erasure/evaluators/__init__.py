"""Evaluations: ``base`` holds the contract, every other module a family of metrics."""
from erasure.evaluators.base import Evaluator, Outcome

__all__ = ["Evaluator", "Outcome"]
