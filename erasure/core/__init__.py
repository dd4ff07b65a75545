"""Foundations: config loading and schema, the factory, registries, parameters, errors, paths,
seeding and devices, timing and the model cache. Imports nothing above it (tests/test_layers.py).

Importing this package installs the factory's check of nested specs in :mod:`erasure.core.params`
(which the factory builds on, so params never imports it)."""
from erasure.core import factory as _factory  # noqa: F401
