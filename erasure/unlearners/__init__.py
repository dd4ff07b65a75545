"""Unlearning methods: ``base`` holds the contract, every other module one method."""
from erasure.unlearners.base import Unlearner, UnlearningContext

__all__ = ["Unlearner", "UnlearningContext"]
