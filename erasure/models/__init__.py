"""Model zoo, forward-order layer discovery, batched inference and the trainer."""
from erasure.models.base import Model, parametrized_layers
from erasure.models.training import TrainingRecipe, train_model

__all__ = ["Model", "TrainingRecipe", "parametrized_layers", "train_model"]
