"""Training schemes: how the original and gold are trained for exact and certified unlearning
(SISA shards and slices, an update log, a removal-enabled linear head). See
:mod:`erasure.models.schemes.base`."""
from erasure.models.schemes.base import TrainingScheme, build_scheme, same_scheme, scheme_spec

__all__ = ["TrainingScheme", "build_scheme", "same_scheme", "scheme_spec"]
