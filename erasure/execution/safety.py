"""Guards that keep one job from spoiling others: non-finite models, changed shared state,
component-raised interrupts, and NaN metrics without a reason."""
from __future__ import annotations

import contextlib
import math
from dataclasses import replace
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from erasure.core.errors import watch_interrupts
from erasure.data.partitions import Partitions
from erasure.evaluators.base import Undefined

_CHUNK = 1 << 22
_WATCHING: list[Callable[[], bool]] = []  # innermost watch last


def interrupted_by_user(exc: BaseException) -> bool:
    """True for the KeyboardInterrupt of a real Ctrl-C (not one a component raised itself).
    Outside :func:`user_interrupts_marked` (e.g. in a pool worker, where Ctrl-C is the driver's)
    every KeyboardInterrupt is a component's."""
    return isinstance(exc, KeyboardInterrupt) and bool(_WATCHING) and _WATCHING[-1]()


@contextlib.contextmanager
def user_interrupts_marked() -> Iterator[None]:
    """While active, a SIGINT (Ctrl-C) is remembered (:func:`erasure.core.errors.watch_interrupts`),
    so :func:`interrupted_by_user` can tell it from a ``KeyboardInterrupt`` or ``SystemExit``
    raised inside a component (an error row)."""
    with watch_interrupts() as real:
        _WATCHING.append(real)
        try:
            yield
        finally:
            _WATCHING.pop()


def nonfinite_parameters(model: nn.Module, limit: int = 3) -> str:
    """Names of parameters or buffers holding NaN or inf (empty when the model is finite)."""
    bad = [name for name, t in model.state_dict().items()
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    return ", ".join(bad[:limit]) + (f" and {len(bad) - limit} more" if len(bad) > limit else "")


def _tensor_signature(t: Tensor) -> tuple:
    """Shape, dtype and two checksums (plain and position-weighted sums in float64), computed in
    chunks: cheap on any device, and changed by zeroing, editing or permuting the values."""
    flat = t.detach().reshape(-1)
    total = weighted = 0.0
    for start in range(0, flat.numel(), _CHUNK):
        chunk = torch.nan_to_num(flat[start:start + _CHUNK].double(), nan=0.5, posinf=1.5, neginf=-1.5)
        weights = (torch.arange(start, start + len(chunk), device=chunk.device, dtype=torch.float64) % 1009) + 1
        total += float(chunk.sum())
        weighted += float((chunk * weights).sum())
    return tuple(t.shape), str(t.dtype), total, weighted


def signature(obj: Partitions | list[Partitions] | nn.Module) -> tuple:
    """A fingerprint of the tensors a seed's jobs share: a model's state, or the data's inputs,
    targets, attributes and the partitions' indices."""
    if isinstance(obj, nn.Module):
        return tuple((k, _tensor_signature(v)) for k, v in obj.state_dict().items())
    partitions = list({id(p): p for p in (obj if isinstance(obj, list) else [obj])}.values())
    datasets = list({id(p.dataset): p.dataset for p in partitions}.values())
    tensors = []
    for i, data in enumerate(datasets):
        tensors += [(f"{i} targets", data.targets), *((f"{i} attribute {k}", v) for k, v in data.attributes.items())]
        if isinstance(data.inputs, Tensor):
            tensors.append((f"{i} inputs", data.inputs))
    for i, parts in enumerate(partitions):
        tensors += [(f"{i} partition {k}", v) for k, v in parts.indices.items()]
    seen: dict[int, tuple] = {}  # one tensor shared by several requests' partitions is read once
    for _, v in tensors:
        if id(v) not in seen:
            seen[id(v)] = _tensor_signature(v)
    return tuple((k, seen[id(v)]) for k, v in tensors)


def partitions_for_job(parts: Partitions) -> Partitions:
    """The partitions an unlearner gets: its own copies of targets, attributes and indices (small);
    the inputs are shared and checked by :func:`signature` after the job instead of copied."""
    data = parts.dataset
    dataset = replace(data, targets=data.targets.clone(), attributes={k: v.clone() for k, v in data.attributes.items()},
                      splits={k: v.clone() for k, v in data.splits.items()}, info=dict(data.info))
    return Partitions(dataset, {k: v.clone() for k, v in parts.indices.items()}, parts.forget_spec, dict(parts.extras))


def undefined_reason(value: Any) -> str | None:
    """Why a metric value is undefined (NaN), or None for a finite or infinite number."""
    if isinstance(value, Undefined):
        return value.reason
    if isinstance(value, float) and math.isnan(value):
        return "the evaluator returned NaN without saying why"
    return None
