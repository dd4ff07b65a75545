"""Model zoo, forward-order layer discovery, batched inference and the trainer."""
from erasure.models.base import Model, layer_groups, parametrized_layers
from erasure.models.training import TrainingRecipe, train_model

__all__ = ["Model", "TrainingRecipe", "layer_groups", "parametrized_layers", "train_model"]
