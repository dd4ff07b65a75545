"""The attack models of the membership inference attacks (UMIA, ShadowMIA), from scikit-learn."""
from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator, Literal

AttackModel = Literal["logistic", "mlp"]


def attack_classifier(kind: AttackModel = "logistic", seed: int = 0) -> Any:
    """A fresh binary attack model: ``LogisticRegression()`` (the NeurIPS 2023 kit's), or a small
    neural network (standardised inputs, one hidden layer of 64 ReLU units, Adam, seeded)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        return LogisticRegression()
    return make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=seed))


@contextlib.contextmanager
def quiet_convergence() -> Iterator[None]:
    """Silence sklearn's ConvergenceWarning: an attack model is a fixed-budget estimate, and its
    accuracy, not its optimiser's state, is what the attack reports."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
