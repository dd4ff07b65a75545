"""Builds components from ``{"class": NAME, "parameters": {...}}`` specs.

A config is data, never code. NAME is a registered short name or a dotted path
inside ``erasure``, ``torch`` or a module the config declares under ``imports``;
any other module is refused before it is imported. The class must subclass the
base that the slot expects, and its parameters are checked against its
constructor before anything runs.
"""
from __future__ import annotations

import contextlib
import contextvars
import difflib
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from erasure.core import registry as reg
from erasure.core.errors import ConfigError, join_path
from erasure.core.params import check_parameters

BUILTIN_ROOTS = ("erasure", "torch")
_IMPORTS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("erasure_imports", default=())


@contextlib.contextmanager
def allowed_imports(modules: list[str] | tuple[str, ...]) -> Iterator[None]:
    """Within this block, dotted paths may also resolve inside ``modules``."""
    token = _IMPORTS.set(tuple(modules))
    try:
        yield
    finally:
        _IMPORTS.reset(token)


def import_user_modules(modules: list[str], path: str = "imports") -> None:
    """Import contributors' modules so that their components register."""
    for i, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except Exception as exc:  # ImportError, or an error inside the module
            raise ConfigError(f"cannot import module {module!r}: {exc}", join_path(path, i)) from exc


@dataclass(frozen=True)
class Slot:
    """Where a spec may appear: the base class it must subclass and how short names resolve."""

    name: str
    base: Callable[[], type]
    short_names: Callable[[], dict[str, type]]
    provided: tuple[str, ...] = ()  # arguments the framework passes itself
    dry_run: Callable[[type, dict], Any] | None = None  # instantiate cheaply to surface the class's own checks


def _torch_classes(module_name: str, base: type) -> dict[str, type]:
    module = importlib.import_module(module_name)
    return {
        name: obj
        for name, obj in vars(module).items()
        if isinstance(obj, type) and issubclass(obj, base) and obj is not base and not name.startswith("_")
    }


def _optimizer_base() -> type:
    import torch

    return torch.optim.Optimizer


def _loss_base() -> type:
    import torch

    return torch.nn.modules.loss._Loss


def _scheduler_base() -> type:
    import torch

    return torch.optim.lr_scheduler.LRScheduler


def _dummy_params() -> list:
    import torch

    return [torch.nn.Parameter(torch.zeros(1))]


def _dry_optimizer(cls: type, params: dict) -> Any:
    return cls(_dummy_params(), **params)


def _dry_scheduler(cls: type, params: dict) -> Any:
    import torch

    return cls(torch.optim.SGD(_dummy_params(), lr=0.1), **params)


def _module_base() -> type:
    import torch

    return torch.nn.Module


def _registry_slot(kind: str, provided: tuple[str, ...] = ()) -> Slot:
    return Slot(kind, lambda: reg.base_of(kind), lambda: reg.registry(kind), provided)


SLOTS: dict[str, Slot] = {
    "data_source": _registry_slot("data_source"),
    "forget": _registry_slot("forget"),
    "unlearner": _registry_slot("unlearner"),
    "evaluator": _registry_slot("evaluator"),
    "writer": _registry_slot("writer"),
    "model": Slot("model", _module_base, lambda: reg.registry("model"), ("input_shape", "num_classes")),
    "optimizer": Slot(
        "optimizer",
        _optimizer_base,
        lambda: _torch_classes("torch.optim", _optimizer_base()),
        ("params",),
        _dry_optimizer,
    ),
    "loss": Slot(
        "loss",
        _loss_base,
        lambda: _torch_classes("torch.nn", _loss_base()),
        (),
        lambda cls, params: cls(**params),
    ),
    "scheduler": Slot(
        "scheduler",
        _scheduler_base,
        lambda: _torch_classes("torch.optim.lr_scheduler", _scheduler_base()),
        ("optimizer",),
        _dry_scheduler,
    ),
}

SPEC_KEYS = {"class", "parameters", "label"}


def resolve_class(name: str, slot: str, path: str) -> type:
    """The class that ``name`` denotes in ``slot``, refusing anything outside the allowed modules."""
    spec_slot = SLOTS[slot]
    base = spec_slot.base()
    if not isinstance(name, str) or not name:
        raise ConfigError(f"expected a class name (string), got {name!r}", path)
    if "." not in name:
        known = spec_slot.short_names()
        if name in known:
            cls = known[name]
        else:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            listing = ", ".join(sorted(known)) if len(known) <= 40 else f"{len(known)} names (see --list {slot})"
            raise ConfigError(f"unknown {slot} class {name!r}{hint} Known: {listing}", path)
    else:
        cls = _import_dotted(name, path)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(
            f"{name!r} is not a {slot}: expected a subclass of {base.__module__}.{base.__qualname__}", path
        )
    if cls is base or inspect.isabstract(cls) or cls.__name__.startswith("_"):
        raise ConfigError(f"{name!r} is an abstract base, not a concrete {slot} class", path)
    return cls


def _import_dotted(name: str, path: str) -> Any:
    module_name, _, attr = name.rpartition(".")
    allowed = BUILTIN_ROOTS + reg.plugin_modules() + _IMPORTS.get()
    if not any(module_name == root or module_name.startswith(root + ".") for root in allowed):
        raise ConfigError(
            f"refusing to import {name!r}: dotted paths must lie inside {', '.join(allowed)}"
            " (declare your own module under \"imports\")",
            path,
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} for class {name!r}: {exc}", path) from exc
    if not hasattr(module, attr):
        raise ConfigError(f"module {module_name!r} has no class {attr!r}", path)
    return getattr(module, attr)


def validate_spec(spec: Any, slot: str, path: str, *, allow_label: bool = False) -> tuple[type, dict]:
    """Check a spec's shape, class and parameters; return ``(cls, parameters)``."""
    if isinstance(spec, str):  # shorthand: "Adam"
        spec = {"class": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f'expected a {slot} spec {{"class": ..., "parameters": {{...}}}}, got {spec!r}', path)
    allowed = SPEC_KEYS if allow_label else SPEC_KEYS - {"label"}
    for key in spec:
        if key not in allowed:
            raise ConfigError(f"unknown key {key!r} in a {slot} spec; expected {', '.join(sorted(allowed))}", join_path(path, key))
    if "class" not in spec:
        raise ConfigError(f'missing "class" in a {slot} spec', path)
    if "label" in spec and (not isinstance(spec["label"], str) or not spec["label"]):
        raise ConfigError(f"expected a non-empty string label, got {spec['label']!r}", join_path(path, "label"))
    cls = resolve_class(spec["class"], slot, join_path(path, "class"))
    params = spec.get("parameters") or {}
    params_path = join_path(path, "parameters")
    is_builtin = cls.__module__.startswith("erasure.") or issubclass(cls, reg.Component)
    provided = set(SLOTS[slot].provided)
    check_parameters(cls, params, params_path, provided=provided, check_types=True)
    dry_run = SLOTS[slot].dry_run
    if dry_run is not None and not is_builtin:
        try:
            dry_run(cls, params)
        except Exception as exc:
            raise ConfigError(f"{cls.__name__} rejects these parameters: {exc}", params_path) from exc
    return cls, dict(params)


def build(spec: Any, slot: str, path: str, **provided: Any) -> Any:
    """Validate ``spec`` and construct it; ``provided`` are framework-supplied arguments."""
    cls, params = validate_spec(spec, slot, path, allow_label=(slot == "unlearner"))
    accepted = set(inspect.signature(cls.__init__).parameters)
    extra = {k: v for k, v in provided.items() if k in accepted and k not in params}
    try:
        obj = cls(**params, **extra)
    except ConfigError as exc:
        exc.path = join_path(join_path(path, "parameters"), exc.path) if exc.path else path
        raise
    except Exception as exc:
        raise ConfigError(f"cannot build {cls.__name__}: {exc}", join_path(path, "parameters")) from exc
    if isinstance(obj, reg.Component):
        try:
            obj.check()
        except ConfigError as exc:
            exc.path = join_path(join_path(path, "parameters"), exc.path) if exc.path else path
            raise
    return obj


def instantiate(spec: dict | str, slot: str, *args: Any, **kwargs: Any) -> Any:
    """Build an already-validated nested spec (an optimizer with its ``params``, a scheduler, a loss)."""
    if isinstance(spec, str):
        spec = {"class": spec}
    cls = resolve_class(spec["class"], slot, slot)
    return cls(*args, **(spec.get("parameters") or {}), **kwargs)
