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


_COLUMNS = 1009  # a prime: a sample moved to another row lands in other columns (rows are rarely a multiple)
_CHUNK_WORDS = _COLUMNS * 256  # ~1 MB of int32 words per chunk of a full checksum
_SAMPLE = 1 << 16  # values a quick check reads per tensor, whatever its size
_WEIGHTS: dict[torch.device, Tensor] = {}


def _words(t: Tensor) -> Tensor:
    """The bytes of a contiguous tensor as one flat integer view (int32 where the size allows, else
    uint8): no copy, no float arithmetic, on the tensor's device."""
    flat = t.detach().reshape(-1)
    if flat.numel() == 0:
        return flat.new_zeros(0, dtype=torch.int32)
    raw = flat.view(torch.uint8)
    return raw.view(torch.int32) if raw.numel() % 4 == 0 else raw


def _mix(words: Tensor) -> Tensor:
    """(sum, position-weighted sum) of integer ``words`` as an int64 pair (wrapping on overflow):
    changed by zeroing, editing or moving values (to another column of 1,009); temporaries of at
    most twice ``words``' size."""
    device = words.device
    if device not in _WEIGHTS:
        _WEIGHTS[device] = torch.arange(1, _COLUMNS + 1, dtype=torch.int64, device=device)
    weights = _WEIGHTS[device]
    rows = len(words) // _COLUMNS
    columns = words[:rows * _COLUMNS].view(rows, _COLUMNS).sum(0, dtype=torch.int64)
    tail = words[rows * _COLUMNS:].to(torch.int64)
    return torch.stack([columns.sum() + tail.sum(), (columns * weights).sum() + (tail * weights[:len(tail)]).sum()])


def _pieces(t: Tensor, words_per_piece: int) -> Iterator[Tensor]:
    """``t``'s bytes as integer words, in pieces of about ``words_per_piece``: views of a contiguous
    tensor, copies of a few rows of another."""
    if t.is_contiguous() or t.numel() == 0:
        words = _words(t)
        for start in range(0, len(words), words_per_piece):
            yield words[start:start + words_per_piece]
        return
    rows = max(1, words_per_piece * 4 // max(1, t[0].numel() * t.element_size()))
    for start in range(0, len(t), rows):
        yield _words(t[start:start + rows].contiguous())


def checksum(t: Tensor) -> tuple:
    """Shape, dtype and an integer checksum of every byte of ``t``, in chunks of ~1 MB on its device
    (one pass over the data; no temporary larger than a chunk)."""
    total = torch.zeros(3, dtype=torch.int64, device=t.device)
    for i, piece in enumerate(_pieces(t, _CHUNK_WORDS)):
        mixed = _mix(piece)
        total[:2] += mixed
        total[2] += mixed[0] * (i + 1)
    return tuple(t.shape), str(t.dtype), tuple(total.tolist())


def _sample(t: Tensor) -> tuple:
    """An integer checksum of ``_SAMPLE`` values spread evenly over ``t`` (all of a small tensor):
    constant cost, and changed by any write that touches most values (normalising, zeroing, noise)."""
    if t.is_contiguous() or t.numel() == 0:
        words = _words(t)
        spread = words[::max(1, len(words) // _SAMPLE)][:_SAMPLE].contiguous()
    else:
        spread = _words(t[::max(1, len(t) // 64)].contiguous())[:_SAMPLE]
    return tuple(_mix(spread).tolist())


def version_of(t: Tensor) -> int:
    """Autograd's version counter of ``t`` (-1 for an inference-mode tensor, which keeps none)."""
    try:
        return t._version
    except RuntimeError:
        return -1


def quick_signature(t: Tensor) -> tuple:
    """What can be read of ``t`` at a cost independent of its size: autograd's version counter
    (bumped by every in-place torch operation on it or a view of it), where its storage is, its
    layout, and :func:`_sample`. Writes that bypass the counter (through ``.data``, ``.numpy()``
    or the raw storage) change it only when they touch sampled values."""
    return version_of(t), t.data_ptr(), str(t.dtype), tuple(t.shape), t.stride(), t.storage_offset(), _sample(t)


class SharedTensors:
    """Tensors that several jobs share, watched for changes.

    ``source`` lists them (called at each check, so a tensor replaced in the structure that holds
    it counts as a change). Built once per seed: a full :func:`checksum` of each and its
    :func:`quick_signature`. :meth:`changed` compares quick signatures, a cost that does not grow
    with the data; a tensor whose quick signature moved is checksummed in full and reported only
    if its values changed (an in-place write of the same values is forgiven, the new counter kept).
    ``exact`` (small tensors such as a model's weights): :meth:`changed` with ``full=True``
    compares full checksums too, which also catches a sparse write that bypasses the counter.
    """

    def __init__(self, source: Callable[[], dict[str, Tensor]], exact: bool = False):
        self.source = source
        self.exact = exact
        tensors = source()
        self.full = {k: checksum(v) for k, v in tensors.items()}
        self.quick = {k: quick_signature(v) for k, v in tensors.items()}
        self.storages = {t.untyped_storage().data_ptr() for t in tensors.values() if t.numel()}  # who else shares them

    def changed(self, full: bool = False) -> list[str]:
        """Names of the tensors whose values (or presence) differ from when this was built."""
        tensors = self.source()
        out = sorted(set(tensors) ^ set(self.full))
        for name, t in tensors.items():
            if name not in self.full:
                continue
            quick = quick_signature(t)
            if quick == self.quick[name] and not (full and self.exact):
                continue
            if checksum(t) != self.full[name]:
                out.append(name)
            else:
                self.quick[name] = quick
        return out


def data_tensors(obj: Partitions | list[Partitions]) -> dict[str, Tensor]:
    """The tensors a seed's jobs share: each dataset's inputs (a tensor, or a node graph's tensors),
    targets, attributes and official splits, and the partitions' indices (each tensor once)."""
    partitions = list({id(p): p for p in (obj if isinstance(obj, list) else [obj])}.values())
    datasets = list({id(d): d for p in partitions for d in (p.dataset, p.extras.get("before_forget")) if d is not None}.values())
    named: list[tuple[str, Tensor]] = []
    for i, data in enumerate(datasets):
        if isinstance(data.inputs, Tensor):
            named.append((f"{i} inputs", data.inputs))
        elif data.kind == "node_graph":
            named += [(f"{i} graph {k}", v) for k, v in data.inputs.items() if isinstance(v, Tensor)]
        named += [(f"{i} targets", data.targets), *((f"{i} attribute {k}", v) for k, v in data.attributes.items()),
                  *((f"{i} split {k}", v) for k, v in data.splits.items())]
    for i, parts in enumerate(partitions):
        named += [(f"{i} partition {k}", v) for k, v in parts.indices.items()]
    seen: set[int] = set()
    out = {}
    for name, t in named:
        if id(t) not in seen and t.layout == torch.strided:
            seen.add(id(t))
            out[name] = t
    return out


def model_tensors(model: nn.Module) -> dict[str, Tensor]:
    """A model's parameters and buffers (the objects themselves, so their version counters)."""
    return dict(model.state_dict(keep_vars=True))


def partitions_for_job(parts: Partitions) -> Partitions:
    """The partitions an unlearner gets: its own copies of targets, attributes and indices (small);
    the inputs are shared (watched by :class:`SharedTensors`) instead of copied."""
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
