"""The generic options of training-based unlearners, applied around their ``unlearn`` call.

:class:`~erasure.unlearners.base.TrainingUnlearner` gives every method that takes gradient steps
five keyword parameters and applies them here, so the methods' own loops stay as they are:

* ``trainable_layers`` (k): only the last k layers in forward order train (CF-k's layers,
  :func:`~erasure.unlearners._common.last_layers`); the others keep their weights and run in
  eval mode (batch-norm statistics unchanged), as :class:`~erasure.unlearners.cfk.CFk` does;
* ``gradient_mask``: a {parameter name: 0/1} mask (a mask an earlier ``SaliencyMask`` step of the
  same ``Cascade`` left in the context under that name, or a file); gradient steps change no
  weight where it is 0 (weight decay and momentum included), as in SalUn;
* ``select`` / ``validation``: after every epoch (``ctx.end_epoch``) the model is measured on
  the forget set and a validation partition, and the epoch chosen by the rule is returned;
* ``augment``: the method trains on the partitions seen through the recipe's train-time
  augmentation (:func:`erasure.data.augment.augmented`, drawn from ``ctx.generator``); on by
  default where the reference code does so (the class's ``augments``). Checkpoint selection
  measures the data as it is.
"""
from __future__ import annotations

import contextlib
import contextvars
import io
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import torch
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from erasure.core.seeding import derive_seed
from erasure.data.augment import Augmentation, augmented
from erasure.data.partitions import Partitions
from erasure.models.training import accuracy
from erasure.results.files import atomic_write_bytes
from erasure.results.targets import as_gold, gold_gap
from erasure.unlearners._common import last_layers
from erasure.unlearners.context import UnlearningContext

SelectRule = Literal["gold_forget_accuracy", "gold_gap", "validation_accuracy"]
GOLD_RULES = ("gold_forget_accuracy", "gold_gap")
DEFAULT_VALIDATION_FRACTION = 0.1
#: Partitions drawn from the test split, which checkpoint selection must never read.
TEST_PARTITIONS = ("test", "forget_test", "retain_test")
_APPLYING: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar("erasure_training_options", default=frozenset())


def run_with_options(unlearner: Any, unlearn: Callable[..., nn.Module], model: nn.Module,
                     ctx: UnlearningContext) -> nn.Module:
    """``unlearn(unlearner, model, ctx)`` with the unlearner's generic options applied (once, even
    when a subclass's ``unlearn`` calls its parent's); ``unlearner`` is a ``TrainingUnlearner``
    (:mod:`erasure.unlearners.base`, which builds on this module)."""
    active = _APPLYING.get()
    if id(ctx) in active:
        return unlearn(unlearner, model, ctx)
    token = _APPLYING.set(active | {id(ctx)})
    partitions = ctx.partitions
    try:
        with contextlib.ExitStack() as stack:
            selection = None
            if unlearner.select is not None:
                ctx.partitions, validation = validation_split(ctx, unlearner.validation)
                selection = EpochSelection(unlearner.select, ctx, validation)
                ctx.on_epoch = selection.end_epoch
            if unlearner.trainable_layers is not None:
                stack.enter_context(frozen_outside(model, [m for _, m in last_layers(model, ctx, unlearner.trainable_layers)]))
            if unlearner.gradient_mask is not None:
                stack.enter_context(masked_gradients(model, resolve_mask(unlearner.gradient_mask, model, ctx)))
            if augments(unlearner) and ctx.recipe.augment:
                augmentation = Augmentation(ctx.recipe.augment)
                ctx.partitions = ctx.partitions.with_dataset(augmented(ctx.partitions.dataset, augmentation, ctx.generator))
            result = unlearn(unlearner, model, ctx)
            if selection is not None:
                selection.keep(result)
        return result
    finally:
        ctx.partitions, ctx.on_epoch = partitions, None
        _APPLYING.reset(token)


def augments(unlearner: TrainingUnlearner) -> bool:
    """Whether the method trains on augmented batches: its ``augment`` option, else its reference's choice."""
    return type(unlearner).augments if unlearner.augment is None else unlearner.augment


# ----------------------------------------------------------------------------- trainable layers
@contextlib.contextmanager
def frozen_outside(model: nn.Module, trainable: list[nn.Module]) -> Iterator[None]:
    """Within the block, only the parameters of ``trainable`` take gradients and every other module
    runs in eval mode whatever ``model.train()`` says (a forward pre-hook), so frozen layers keep
    their weights and their batch-norm statistics bit for bit. Flags and hooks are restored after."""
    inside = {id(sub) for m in trainable for sub in m.modules()}
    keep = {id(p) for m in trainable for p in m.parameters()}
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, flag in flags:
        p.requires_grad_(flag and id(p) in keep)
    hooks = [m.register_forward_pre_hook(_force_eval) for m in model.modules() if id(m) not in inside]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()
        for p, flag in flags:
            p.requires_grad_(flag)


def _force_eval(module: nn.Module, _args: Any) -> None:
    module.training = False


# ----------------------------------------------------------------------------- gradient masks
@contextlib.contextmanager
def masked_gradients(model: nn.Module, masks: dict[str, Tensor]) -> Iterator[None]:
    """Within the block, gradient steps change no weight where its mask is False: each gradient is
    masked once accumulated, and after every optimizer step that holds one of these parameters the
    masked-out weights are put back to their values at its first step (so weight decay and momentum
    cannot move them either). Parameters without a mask are unaffected."""
    params = {id(p): (p, masks[n]) for n, p in model.named_parameters() if n in masks}
    kept: dict[int, Tensor] = {}  # the masked parameters' values at their first step

    def before_step(optimizer: torch.optim.Optimizer, *_: Any) -> None:
        for group in optimizer.param_groups:
            for p in group["params"]:
                if id(p) in params and id(p) not in kept:
                    kept[id(p)] = p.detach().clone()

    def after_step(optimizer: torch.optim.Optimizer, *_: Any) -> None:
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if id(p) in kept:
                        p.copy_(torch.where(params[id(p)][1], p, kept[id(p)]))

    def mask_gradient(p: Tensor) -> None:
        p.grad.mul_(params[id(p)][1])

    handles = [p.register_post_accumulate_grad_hook(mask_gradient) for p, _ in params.values() if p.requires_grad]
    handles += [register_optimizer_step_pre_hook(before_step), register_optimizer_step_post_hook(after_step)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def resolve_mask(name: str, model: nn.Module, ctx: UnlearningContext) -> dict[str, Tensor]:
    """The mask named ``name`` in the context (left by an earlier ``SaliencyMask`` step), else the
    mask file at that path; checked against the model's parameters, as booleans on their devices."""
    if name in ctx.masks:
        return checked_mask(ctx.masks[name], model, f"the context's mask {name!r}")
    if not Path(name).is_file():
        held = ", ".join(repr(k) for k in ctx.masks) or "none"
        raise FileNotFoundError(f"gradient_mask {name!r}: no mask of that name in the context (masks held: {held}) "
                                "and no such file")
    return checked_mask(read_gradient_mask(name), model, name)


def checked_mask(mask: Any, model: nn.Module, what: str) -> dict[str, Tensor]:
    """``mask`` as {parameter name: bool tensor}: every key a parameter of ``model``, every tensor of
    its shape and 0/1 (or boolean); parameters it does not name stay unmasked."""
    if not isinstance(mask, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in mask.items()):
        raise ValueError(f"{what}: expected a dict of parameter name -> tensor")
    params = dict(model.named_parameters())
    unknown = sorted(set(mask) - set(params))
    if unknown:
        raise ValueError(f"{what}: {len(unknown)} name(s) are not parameters of the model ({', '.join(unknown[:5])}); "
                         f"its parameters: {', '.join(list(params)[:8])}{', ...' if len(params) > 8 else ''}")
    out = {}
    for name, values in mask.items():
        p = params[name]
        if values.shape != p.shape:
            raise ValueError(f"{what}: the mask of {name} has shape {tuple(values.shape)}, the parameter {tuple(p.shape)}")
        if values.dtype != torch.bool and not bool(((values == 0) | (values == 1)).all()):
            raise ValueError(f"{what}: the mask of {name} holds values other than 0 and 1")
        out[name] = values.to(device=p.device, dtype=torch.bool)
    return out


def read_gradient_mask(path: str | Path) -> dict[str, Tensor]:
    """A mask file: a ``torch.save``-d {parameter name: tensor}, read with ``weights_only=True``."""
    return torch.load(path, map_location="cpu", weights_only=True)


def write_gradient_mask(masks: dict[str, Tensor], path: str | Path) -> Path:
    """Save ``masks`` as boolean CPU tensors to ``path`` (its folders created), in one step and
    never through a symbolic link (:func:`erasure.results.files.atomic_write_bytes`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({n: m.detach().to("cpu", torch.bool) for n, m in masks.items()}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


# ----------------------------------------------------------------------------- checkpoint selection
def validation_split(ctx: UnlearningContext, validation: str | float | None) -> tuple[Partitions, Tensor]:
    """The partitions the method trains on and the validation index.

    A fraction (default 0.1) carves that share of retain out at random (seeded from the job's
    seed; the method then trains on the rest, and the carved samples are also the partition
    ``"validation"``); a name takes that partition as it is. Never test samples.
    """
    parts = ctx.partitions
    if isinstance(validation, str):
        if validation not in parts:
            raise ValueError(f"validation partition {validation!r} does not exist (partitions: {', '.join(parts.names)})")
        index = parts[validation]
    else:
        retain, share = parts["retain"], validation or DEFAULT_VALIDATION_FRACTION
        count = max(1, int(round(share * len(retain))))
        if count >= len(retain):
            raise ValueError(f"a validation share of {share} leaves none of the {len(retain)} retained samples to train on")
        generator = torch.Generator().manual_seed(derive_seed(ctx.seed, "validation"))
        chosen = torch.zeros(len(retain), dtype=torch.bool)
        chosen[torch.randperm(len(retain), generator=generator)[:count]] = True
        chosen = chosen.to(retain.device)
        index = retain[chosen]
        parts = Partitions(parts.dataset, {**parts.indices, "retain": retain[~chosen], "validation": index},
                           parts.forget_spec, dict(parts.extras))
    if len(index) == 0:
        raise ValueError(f"the validation partition {validation!r} is empty")
    test = [parts[name] for name in TEST_PARTITIONS if name in parts]
    if test and bool(torch.isin(index, torch.cat(test)).any()):
        raise ValueError(f"the validation partition {validation!r} holds test samples; checkpoint selection never reads the test set")
    return parts, index


def selection_key(rule: SelectRule, metrics: dict[str, float], gold: dict[str, float] | None) -> tuple:
    """What ``rule`` minimises over the epochs (see :class:`EpochSelection`)."""
    if rule == "gold_gap":
        return (metrics["gold_gap"],)
    if rule == "validation_accuracy":
        return (-metrics["accuracy_validation"],)
    if metrics["accuracy_forget"] <= gold["accuracy_forget"]:
        return (0, -metrics["accuracy_validation"])
    return (1, metrics["accuracy_forget"])


class EpochSelection:
    """Measures the model after every epoch and keeps the epoch the rule prefers (earliest on ties).

    Measured: accuracy on the forget set and on the validation partition (and, for ``gold_gap``,
    their gold gap), logged per epoch as ``selection_*`` trajectory rows; at the end the kept
    epoch's weights are loaded and ``selected_epoch`` is logged (epochs count from 1).

    * ``gold_forget_accuracy``: among the epochs whose forget accuracy is at or below the gold
      model's, the best validation accuracy; if none is, the lowest forget accuracy;
    * ``gold_gap``: the smallest gold gap (:func:`erasure.results.targets.gold_gap`) over forget
      and validation accuracy, both with gold's values on the same samples as targets;
    * ``validation_accuracy`` (needs no gold model): the best validation accuracy.
    """

    GAP_TARGETS = {"accuracy_forget": as_gold(), "accuracy_validation": as_gold()}

    def __init__(self, rule: SelectRule, ctx: UnlearningContext, validation: Tensor):
        self.rule, self.ctx, self.validation = rule, ctx, validation
        self.partitions = ctx.partitions  # as they are: never the augmented training view
        self.gold = self.measure(ctx.gold_provider()[0]) if rule in GOLD_RULES else None
        self.epoch = 0
        self.best: tuple[tuple, int, dict[str, Tensor]] | None = None  # (key, epoch, weights)

    def measure(self, model: nn.Module) -> dict[str, float]:
        modes = [(m, m.training) for m in model.modules()]
        try:
            return {"accuracy_forget": accuracy(model, self.partitions, "forget"),
                    "accuracy_validation": accuracy(model, self.partitions, self.validation)}
        finally:
            for m, mode in modes:
                m.training = mode

    def end_epoch(self, model: nn.Module) -> None:
        self.epoch += 1
        metrics = self.measure(model)
        if self.rule == "gold_gap":
            metrics["gold_gap"] = gold_gap(metrics, self.gold, self.GAP_TARGETS)
        self.ctx.log(self.epoch, {f"selection_{k}": v for k, v in metrics.items()})
        key = selection_key(self.rule, metrics, self.gold)
        if self.best is None or key < self.best[0]:
            self.best = (key, self.epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})

    def keep(self, model: nn.Module) -> None:
        """Load the kept epoch's weights into ``model`` and log ``selected_epoch``."""
        if self.best is None:
            raise RuntimeError("'select' needs the method to call ctx.end_epoch(model) after each epoch, "
                               "and this one never did")
        model.load_state_dict(self.best[2])
        self.ctx.log(None, {"selected_epoch": self.best[1]})
