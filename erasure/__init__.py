"""erasure: a config-driven benchmark framework for machine unlearning."""

__version__ = "0.1.0"
