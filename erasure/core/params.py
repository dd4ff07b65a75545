"""Declarative parameter validation from constructor signatures and type hints.

A component states its constraints in its signature, e.g.::

    def __init__(self, epochs: PositiveInt = 5, lr: PositiveFloat = 1e-4,
                 optimizer: OptimizerSpec | None = None): ...

and :func:`check_parameters` rejects unknown keys (suggesting the closest names),
missing required keys, wrong types and out-of-range values, each with its JSON path.
"""
from __future__ import annotations

import collections.abc
import contextlib
import contextvars
import inspect
import math
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Iterable, Iterator, Literal, Union

from erasure.core.errors import ConfigError, closest, join_path
from erasure.core.paths import check_path_text


@dataclass(frozen=True)
class Range:
    """Numeric bounds for a parameter; ``None`` leaves a side open-ended."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True

    def check(self, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"expected a finite number, got {value!r}", path)
        too_low = self.low is not None and (value < self.low or (value == self.low and not self.low_inclusive))
        too_high = self.high is not None and (value > self.high or (value == self.high and not self.high_inclusive))
        if too_low or too_high:
            raise ConfigError(f"expected a value {self.describe()}, got {value!r}", path)

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>=' if self.low_inclusive else '>'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<=' if self.high_inclusive else '<'} {self.high:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Spec:
    """Marks a parameter holding a nested ``{"class": ..., "parameters": ...}`` spec for ``slot``.

    The spec is validated when the owner is built and stays a plain dict (so
    ``get_params`` round-trips); the owner instantiates it later with
    :func:`erasure.core.factory.instantiate`, e.g. an optimizer once the model exists.
    """

    slot: str
    forbid: tuple[str, ...] = ()  # parameter names the nested spec may not set, with the reason
    reason: str = ""


def _no_spec_validator(spec: Any, slot: str, path: str) -> tuple[type, dict]:
    raise RuntimeError("nested specs are checked by erasure.core.factory: import it first")


#: How a nested spec is checked: the factory's ``validate_spec``, handed down when the factory is
#: imported (the factory builds on this module, so this module never imports it).
_spec_validator: Callable[[Any, str, str], tuple[type, dict]] = _no_spec_validator


def use_spec_validator(validate: Callable[[Any, str, str], tuple[type, dict]]) -> None:
    """Set the function that checks nested specs (called once, by :mod:`erasure.core.factory`)."""
    global _spec_validator
    _spec_validator = validate


@dataclass(frozen=True)
class FilePath:
    """Marks a string parameter that names a file or folder: no NUL, no over-long name
    (see :func:`erasure.core.paths.check_path_text`)."""


@dataclass(frozen=True)
class PartitionRef:
    """Marks a string parameter that names a partition: a built-in one (train, test, forget,
    retain, ...) or one the config defines under ``data.partitions``. Within
    :func:`defined_partitions` (while a config is built) an undefined name is a config error."""


_PARTITIONS: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("erasure_partitions", default=None)


@contextlib.contextmanager
def defined_partitions(names: Iterable[str]) -> Iterator[None]:
    """Within this block, a :data:`PartitionName` parameter must be one of ``names``."""
    token = _PARTITIONS.set(tuple(names))
    try:
        yield
    finally:
        _PARTITIONS.reset(token)


def check_partition_name(value: str, path: str) -> None:
    """Refuse a partition name that the config being built does not define (outside
    :func:`defined_partitions`, e.g. a component built by hand, any name passes here)."""
    names = _PARTITIONS.get()
    if names is None or value in names:
        return
    close = closest(value, names, n=2, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(f"no partition {value!r}{hint} (defined partitions: {', '.join(names)})", path)


PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
PositiveFloat = Annotated[float, Range(0, low_inclusive=False)]
NonNegativeFloat = Annotated[float, Range(0)]
Fraction = Annotated[float, Range(0, 1)]
OpenFraction = Annotated[float, Range(0, 1, low_inclusive=False, high_inclusive=False)]
OptimizerSpec = Annotated[dict, Spec("optimizer")]
LossSpec = Annotated[dict, Spec("loss")]
SchedulerSpec = Annotated[dict, Spec("scheduler")]
#: A training scheme (``training.scheme``): how the original and gold are trained (SISA shards, an update log, ...).
SchemeSpec = Annotated[dict, Spec("scheme")]
#: A ``torchvision.transforms.v2`` transform by short name (``RandomCrop``, ``ColorJitter``, ...).
TransformSpec = Annotated[dict, Spec("transform")]
#: An unlearner's optimizer: class and settings; the learning rate is the method's own ``lr`` parameter.
PathText = Annotated[str, FilePath()]
MethodOptimizerSpec = Annotated[
    dict, Spec("optimizer", ("lr",), "set the learning rate with the unlearner's 'lr' parameter, not inside 'optimizer'")
]
#: The name of a partition: built-in or defined under ``data.partitions``, checked when the config is built.
PartitionName = Annotated[str, PartitionRef()]


def signature_hints(func: Any) -> dict[str, Any]:
    """Type hints of ``func`` with ``Annotated`` extras; empty when they cannot be resolved."""
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # third-party hints that do not resolve: check names only
        return {}


def check_parameters(
    cls: type,
    params: dict[str, Any],
    path: str,
    *,
    provided: frozenset[str] | set[str] = frozenset(),
    check_types: bool = True,
) -> None:
    """Check ``params`` against ``cls``'s constructor.

    ``provided`` names arguments that the framework supplies itself (a model's
    ``num_classes``, an optimizer's ``params``): they count as present and may
    not be set in the config unless the constructor gives them a default.
    """
    if not isinstance(params, dict):
        raise ConfigError(f"expected an object of parameters, got {_describe_value(params)}", path)
    signature = inspect.signature(cls.__init__)
    accepted = {
        name: p
        for name, p in signature.parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    for key in params:
        if key not in accepted and not takes_kwargs:
            close = closest(key, accepted, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            valid = ", ".join(n for n in accepted if n not in provided) or "none"
            raise ConfigError(
                f"unknown parameter {key!r} for {cls.__name__}{hint} (valid parameters: {valid})",
                join_path(path, key),
            )
    for name, p in accepted.items():
        if p.default is inspect.Parameter.empty and name not in params and name not in provided:
            raise ConfigError(f"missing required parameter {name!r} of {cls.__name__}", join_path(path, name))
    if not check_types:
        return
    hints = signature_hints(cls.__init__)
    for key, value in params.items():
        if key in hints:
            check_type(value, hints[key], join_path(path, key))


def check_type(value: Any, hint: Any, path: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` (decoded JSON) fits ``hint``."""
    if not _matches(value, hint, path):
        raise ConfigError(f"expected {describe_type(hint)}, got {_describe_value(value)}", path)


def _matches(value: Any, hint: Any, path: str) -> bool:
    """True when ``value`` fits ``hint``; raises for a fitting type whose constraint fails."""
    if hint is Any or hint is inspect.Parameter.empty or isinstance(hint, typing.TypeVar):
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Annotated:
        if not _matches(value, args[0], path):
            return False
        for meta in args[1:]:
            if isinstance(meta, Range):
                meta.check(value, path)
            elif isinstance(meta, FilePath):
                check_path_text(value, path)
            elif isinstance(meta, PartitionRef):
                check_partition_name(value, path)
            elif isinstance(meta, Spec) and value is not None:
                _, nested = _spec_validator(value, meta.slot, path)
                for name in meta.forbid:
                    if name in nested:
                        raise ConfigError(meta.reason or f"{name!r} may not be set here", join_path(join_path(path, "parameters"), name))
        return True
    if origin is Union or origin is types.UnionType:
        fitting = [a for a in args if _matches_shallow(value, a)]
        if not fitting:
            return False
        for member in fitting:  # a member that fits in full wins (a list of floats
            try:                                # after Sequence[int] in torchvision's hints)
                if _matches(value, member, path):
                    return True
            except ConfigError:
                pass
        _matches(value, fitting[0], path)  # else the first fitting member's constraint error
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                return False
            item_hints = list(args)
        else:
            item_hints = [args[0] if args else Any] * len(value)
        for i, (item, item_hint) in enumerate(zip(value, item_hints)):
            check_type(item, item_hint, join_path(path, i))
        return True
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        if not isinstance(value, dict):
            return False
        if len(args) == 2:
            for k, v in value.items():
                check_type(v, args[1], join_path(path, k))
        return True
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a hint we do not model (e.g. torch.Tensor unions): accept


def _matches_shallow(value: Any, hint: Any) -> bool:
    """Type-only test used to pick a Union member; constraint errors count as a fit."""
    try:
        return _matches(value, hint, "")
    except ConfigError:
        return True


def describe_type(hint: Any) -> str:
    """Human wording of a type hint: ``int >= 1``, ``list of int``, ``'a' or 'b'``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Annotated:
        base = describe_type(args[0])
        for meta in args[1:]:
            if isinstance(meta, Range):
                base = f"{base} {meta.describe()}"
            elif isinstance(meta, Spec):
                base = f'a {meta.slot} spec {{"class": ..., "parameters": {{...}}}}'
            elif isinstance(meta, PartitionRef):
                base = "a partition name"
        return base
    if origin is Union or origin is types.UnionType:
        return " or ".join(describe_type(a) for a in args)
    if hint is None or hint is type(None):
        return "null"
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    if origin in (list, tuple, collections.abc.Sequence):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} items ({', '.join(describe_type(a) for a in args)})"
        return f"a list of {describe_type(args[0])}" if args else "a list"
    if origin in (dict, collections.abc.Mapping):
        return f"an object of {describe_type(args[1])}" if len(args) == 2 else "an object"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", dict: "an object", list: "a list"}
    if hint in names:
        return names[hint]
    return getattr(hint, "__name__", str(hint))


def _describe_value(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "object"}
    name = "null" if value is None else kind.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{name} {text}" if value is not None else name


# ------------------------------------------------------------------ search spaces
@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from [low, high] (``log``: uniformly in log space)."""

    low: float
    high: float
    log: bool = False

    def bounds(self) -> list[Any]:
        return [self.low, self.high]

    def as_config(self) -> dict[str, Any]:
        return {"log_uniform" if self.log else "uniform": [self.low, self.high]}


def LogUniform(low: float, high: float) -> Uniform:  # noqa: N802 (reads like a distribution)
    """A float drawn log-uniformly from [low, high] (learning rates, α, ...)."""
    return Uniform(low, high, log=True)


@dataclass(frozen=True)
class IntRange:
    """An integer drawn uniformly from [low, high] (``log``: in log space)."""

    low: int
    high: int
    log: bool = False

    def bounds(self) -> list[Any]:
        return [self.low, self.high]

    def as_config(self) -> dict[str, Any]:
        return {"int": [self.low, self.high], **({"log": True} if self.log else {})}


@dataclass(frozen=True)
class Choice:
    """One of the listed values."""

    values: tuple[Any, ...]

    def bounds(self) -> list[Any]:
        return list(self.values)

    def as_config(self) -> dict[str, Any]:
        return {"choice": list(self.values)}


Dimension = Union[Uniform, IntRange, Choice]
SEARCH_FORMS = "{\"log_uniform\": [low, high]}, {\"uniform\": [low, high]}, {\"int\": [low, high]} or {\"choice\": [v, ...]}"


def parse_dimension(spec: Any, path: str) -> Dimension:
    """A search dimension from its config form (see :data:`SEARCH_FORMS`)."""
    if isinstance(spec, (Uniform, IntRange, Choice)):
        return spec
    if not isinstance(spec, dict) or not ({"log_uniform", "uniform", "int", "choice"} & set(spec)):
        raise ConfigError(f"expected {SEARCH_FORMS}, got {_describe_value(spec)}", path)
    extra = set(spec) - {"log_uniform", "uniform", "int", "choice", "log"}
    if extra or len(set(spec) - {"log"}) != 1:
        raise ConfigError(f"expected exactly one of {SEARCH_FORMS}, got keys {sorted(spec)}", path)
    kind = next(k for k in spec if k != "log")
    value = spec[kind]
    if kind == "choice":
        if not isinstance(value, list) or not value:
            raise ConfigError("expected a non-empty list of values to choose from", join_path(path, kind))
        return Choice(tuple(value))
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                              for v in value)):
        raise ConfigError(f"expected [low, high], got {_describe_value(value)}", join_path(path, kind))
    low, high = value
    if not low < high:
        raise ConfigError(f"expected low < high, got [{low}, {high}]", join_path(path, kind))
    if kind == "int":
        if not all(isinstance(v, int) for v in value):
            raise ConfigError(f"expected integer bounds, got {value}", join_path(path, kind))
        return IntRange(low, high, bool(spec.get("log", False)))
    if kind == "log_uniform" and low <= 0:
        raise ConfigError(f"a log-uniform range needs low > 0, got {low}", join_path(path, kind))
    return Uniform(float(low), float(high), log=kind == "log_uniform")


def check_search_space(cls: type, space: dict[str, Any], path: str) -> dict[str, Dimension]:
    """Parse ``space`` and check it like parameters: every key a constructor parameter of ``cls``,
    every bound (or choice) a value that parameter accepts."""
    if not isinstance(space, dict):
        raise ConfigError(f"expected an object of search dimensions, got {_describe_value(space)}", path)
    accepted = set(cls.param_names()) if hasattr(cls, "param_names") else set()
    hints = signature_hints(cls.__init__)
    out = {}
    for key, spec in space.items():
        where = join_path(path, key)
        if key not in accepted:
            close = closest(key, accepted, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"{cls.__name__} has no parameter {key!r} to search{hint}", where)
        dimension = parse_dimension(spec, where)
        if key in hints:
            for bound in dimension.bounds():
                check_type(bound, hints[key], where)
        out[key] = dimension
    return out
