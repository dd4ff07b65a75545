"""The :class:`Unlearner` contract and the context it runs in.

``unlearn(model, ctx)`` receives a deep copy of the original model and returns
the unlearned model (it may modify and return the copy). Everything random must
come from ``ctx`` (``ctx.generator``, ``ctx.rng``) or the global RNGs, which the
runner reseeds per (seed, unlearner) before the call.

Losses on labels go through :func:`task_loss` (cross-entropy over classes, or binary
cross-entropy per label on multi-label data). A method that works on multi-label data says so
in ``tasks``; the runner refuses the others on such data before anything is trained.

Methods that take gradient steps subclass :class:`TrainingUnlearner`, which gives them the
generic options ``trainable_layers``, ``gradient_mask``, ``select`` and ``validation`` and
applies them around their ``unlearn`` (:mod:`erasure.unlearners._options`); their training
loops call ``ctx.end_epoch(model)`` after every epoch.
"""
from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from erasure.core.errors import ConfigError
from erasure.core.factory import instantiate
from erasure.core.params import OpenFraction, PathText, PositiveInt
from erasure.core.registry import Component
from erasure.data.dataset import SINGLE_LABEL, TASKS  # noqa: F401  (TASKS: ``tasks`` of a method for both)
from erasure.models.training import task_loss  # noqa: F401  (re-exported: the loss unlearners use)
from erasure.unlearners._options import GOLD_RULES, TEST_PARTITIONS, SelectRule, run_with_options
from erasure.unlearners.context import UnlearningContext  # noqa: F401  (re-exported: the contract's context)


class Unlearner(Component, kind="unlearner"):
    """Base of every unlearning method. Subclasses implement :meth:`unlearn`. ``uses_gold`` says the
    method reads the gold model (``ctx.reuse_gold`` / ``ctx.gold_provider``), so the plan trains it
    ahead; gold is trained on first use anyway. ``tasks`` lists the kinds of targets it handles
    ("single-label", "multi-label"; see :attr:`erasure.data.Dataset.task`)."""

    uses_gold: ClassVar[bool] = False
    tasks: ClassVar[tuple[str, ...]] = (SINGLE_LABEL,)
    #: Default search space of the tuning protocol: parameter name -> LogUniform / Uniform / IntRange /
    #: Choice (erasure.core.params), over the ranges its papers use and containing the defaults. A config
    #: overrides it per entry under "search"; an empty space is never tuned.
    search_space: ClassVar[dict[str, Any]] = {}

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        raise NotImplementedError

    def training_scheme(self) -> dict[str, Any] | None:
        """The training scheme (a ``{"class", "parameters"}`` spec of
        :class:`~erasure.models.schemes.TrainingScheme`) the method needs its original and gold
        trained under, or None for plain training. A config's ``training.scheme`` must then be
        this one or absent (the runner trains this method's references under it)."""
        return None


#: The generic options of :class:`TrainingUnlearner`, in the order they follow a method's own parameters.
TRAINING_OPTIONS = ("trainable_layers", "gradient_mask", "select", "validation", "augment")


class TrainingUnlearner(Unlearner, register=False):
    """Base of the methods that take gradient steps on the model. Every subclass accepts, besides
    its own parameters, five keyword parameters that act around its ``unlearn`` call
    (:mod:`erasure.unlearners._options`), so its training loop stays as it is:

    - ``trainable_layers`` k: train only the last k layers in forward order (CF-k's layers: a
      computation layer with its normalisations); every other layer keeps its weights and runs in
      eval mode, so its batch-norm statistics do not move either.
    - ``gradient_mask``: a {parameter name: 0/1} mask; weights where it is 0 never change (their
      gradients are masked and every optimizer step puts them back to their values at the first
      step, so weight decay and momentum cannot move them). The name of a mask
      an earlier ``SaliencyMask`` step of the same ``Cascade`` left in the context, else a file
      written with ``torch.save`` (read with ``weights_only=True``); unnamed parameters are free.
    - ``select``: checkpoint selection. After every epoch the model is measured on the forget set
      and on a validation partition, and the epoch the rule prefers is returned
      (``gold_forget_accuracy``, ``gold_gap``, or the gold-free ``validation_accuracy``; see
      :class:`~erasure.unlearners._options.EpochSelection`); ``selected_epoch`` is logged.
    - ``validation``: the validation partition of ``select``: a share of retain (default 0.1),
      carved out at random from the job's seed and not trained on, or a partition's name. Never
      the test set.
    - ``augment``: whether the method's training batches go through the recipe's train-time
      augmentation (``training.augment``), drawn from the job's generator: every input the
      method takes from the partitions (``ctx.batches``, ``ctx.partitions``) is augmented, while
      checkpoint selection and the evaluators see the data as it is. None (default) follows the
      method's reference code, the class attribute ``augments`` (docs/fidelity.md says which).

    Subclasses declare only their own constructor parameters (this class adds the five to the
    signature, so they are checked, listed and round-trip like the others) and call
    ``ctx.end_epoch(model)`` at the end of each epoch.
    """

    #: Whether the reference code trains this method on augmented batches (the ``augment`` default).
    augments: ClassVar[bool] = False

    def __init__(self, trainable_layers: PositiveInt | None = None, gradient_mask: PathText | None = None,
                 select: SelectRule | None = None, validation: str | OpenFraction | None = None,
                 augment: bool | None = None):
        self.trainable_layers = trainable_layers
        self.gradient_mask = gradient_mask
        self.select = select
        self.validation = validation
        self.augment = augment

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        for name, wrap in (("__init__", _accepting_options), ("check", _checking_options), ("unlearn", _applying_options)):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_applies_training_options", False):
                setattr(cls, name, wrap(method))

    @property
    def uses_gold(self) -> bool:  # type: ignore[override]
        """A gold-based selection rule reads the gold model."""
        return self.select in GOLD_RULES

    def check(self) -> None:
        if self.validation is not None and self.select is None:
            raise ConfigError("'validation' is the partition of checkpoint selection; it needs 'select'", "validation")
        if self.validation in ("forget", "train", *TEST_PARTITIONS):
            raise ConfigError(f"the validation partition may not be {self.validation!r}: it must be held-out "
                              "training data, never the forget or the test set", "validation")


def _option_parameters() -> tuple[list[inspect.Parameter], dict[str, Any]]:
    """The five options as keyword-only parameters, and their resolved type hints."""
    init = TrainingUnlearner.__dict__["__init__"]
    parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
                  for n, p in inspect.signature(init).parameters.items() if n in TRAINING_OPTIONS]
    hints = typing.get_type_hints(init, include_extras=True)
    return parameters, {n: hints[n] for n in TRAINING_OPTIONS}


def _accepting_options(init: Callable) -> Callable:
    """A subclass's constructor that also takes (and stores) the options, with its signature extended."""
    signature = inspect.signature(init)
    if set(TRAINING_OPTIONS) <= set(signature.parameters):
        return init  # declares them itself
    options, hints = _option_parameters()
    own = list(signature.parameters.values())
    variadic = [p for p in own if p.kind is p.VAR_KEYWORD]
    own = [p for p in own if p.kind is not p.VAR_KEYWORD]

    @functools.wraps(init)
    def __init__(self: TrainingUnlearner, *args: Any, **kwargs: Any) -> None:
        chosen = {p.name: kwargs.pop(p.name, p.default) for p in options}
        init(self, *args, **kwargs)
        for name, value in chosen.items():
            setattr(self, name, value)

    __init__.__signature__ = signature.replace(parameters=own + options + variadic)  # type: ignore[attr-defined]
    __init__.__annotations__ = {**init.__annotations__, **hints}
    __init__._applies_training_options = True  # type: ignore[attr-defined]
    return __init__


def _checking_options(check: Callable) -> Callable:
    @functools.wraps(check)
    def wrapped(self: TrainingUnlearner) -> None:
        TrainingUnlearner.check(self)
        check(self)

    wrapped._applies_training_options = True  # type: ignore[attr-defined]
    return wrapped


def _applying_options(unlearn: Callable) -> Callable:
    @functools.wraps(unlearn)
    def wrapped(self: TrainingUnlearner, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        return run_with_options(self, unlearn, model, ctx)

    wrapped._applies_training_options = True  # type: ignore[attr-defined]
    return wrapped


def build_optimizer(spec: dict | None, default: dict, params: Any, lr: float) -> torch.optim.Optimizer:
    """The method's optimizer: class and settings from ``spec`` (or the paper's ``default``), learning rate ``lr``."""
    spec = spec or default
    return instantiate(spec, "optimizer", params, lr=lr)


def build_scheduler(spec: dict | None, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The method's learning-rate scheduler (any ``torch.optim.lr_scheduler`` spec), or None for a constant rate.

    A method steps it once per epoch with :func:`step_scheduler`, e.g. SCRUB's small-scale decay
    ``{"class": "MultiStepLR", "parameters": {"milestones": [5, 8, 9], "gamma": 0.1}}``.
    """
    return instantiate(spec, "scheduler", optimizer=optimizer) if spec else None


def step_scheduler(scheduler: torch.optim.lr_scheduler.LRScheduler | None, loss: Tensor) -> None:
    """End-of-epoch step; ``ReduceLROnPlateau`` reads ``loss`` (the epoch's last training loss)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(float(loss))
    elif scheduler is not None:
        scheduler.step()


SGD_MOMENTUM = {"class": "SGD", "parameters": {"momentum": 0.9}}
