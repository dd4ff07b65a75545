"""Builds components from ``{"class": NAME, "parameters": {...}}`` specs.

A config is data, never code. NAME is a registered short name or a dotted path
inside ``erasure``, ``torch`` or a module the config declares under ``imports``;
any other module, and any ``__main__`` module, is refused before it is imported.
``imports`` itself runs the named modules' code, like plugins, so it may only name
``erasure``, ``torch``, the user's own modules (outside the Python installation) and
installed packages that declare an ``erasure.plugins`` entry point; see
docs/security.md. The class must subclass the base that the slot expects, and its
parameters are checked against its constructor before anything runs.
"""
from __future__ import annotations

import _imp
import contextlib
import contextvars
import importlib
import importlib.util
import inspect
import os
import sys
import sysconfig
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from erasure.core import registry as reg
from erasure.core.errors import ConfigError, closest, join_path, watch_interrupts
from erasure.core.params import check_parameters, use_spec_validator

BUILTIN_ROOTS = ("erasure", "torch")
PLUGIN_GROUP = "erasure.plugins"
_IMPORTS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("erasure_imports", default=())


@contextlib.contextmanager
def allowed_imports(modules: list[str] | tuple[str, ...]) -> Iterator[None]:
    """Within this block, dotted paths may also resolve inside ``modules``."""
    token = _IMPORTS.set(tuple(modules))
    try:
        yield
    finally:
        _IMPORTS.reset(token)


def import_user_modules(modules: list[str], path: str = "imports", folders: Iterable[str | Path] = ()) -> None:
    """Import contributors' modules so that their components register (each checked first).

    ``folders`` (the config's own folder and the working directory) are appended to the Python path
    first, so that ``mylab/`` beside ``mylab.jsonc`` imports without ``PYTHONPATH``: appended, never
    prepended, so a file there cannot shadow an installed module (``torch``, ``erasure``)."""
    if modules:
        add_to_python_path(folders)
    for i, module in enumerate(modules):
        check_plugin_module(module, join_path(path, i))
        import_module(module, join_path(path, i))


def add_to_python_path(folders: Iterable[str | Path]) -> None:
    """Append each existing folder to ``sys.path`` unless it is already there (resolved)."""
    present = {os.path.realpath(p or ".") for p in sys.path}
    for folder in folders:
        real = os.path.realpath(folder)
        if os.path.isdir(real) and real not in present:
            sys.path.append(real)
            present.add(real)


def check_plugin_module(module: Any, path: str) -> None:
    """Refuse, before importing anything, a module that ``imports`` may not name.

    Allowed: modules of ``erasure`` and ``torch``; the user's own modules (found on the Python
    path outside the standard library and site-packages: the config's folder, the working
    directory, the directory of ``main.py``, ``PYTHONPATH``, an editable checkout); installed packages that declare an ``erasure.plugins``
    entry point.
    Never a ``__main__`` module (it runs a program when imported).
    """
    _check_module_name(module, path)
    top = module.split(".")[0]
    if top in BUILTIN_ROOTS:
        return
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        raise ConfigError(f"refusing to import {module!r}: it is part of Python's standard library, not a plugin "
                          f"(imports may name erasure, torch, your own modules, or installed packages that "
                          f"declare an {PLUGIN_GROUP!r} entry point)", path)
    try:
        spec = importlib.util.find_spec(top)  # a top-level name is located without running any code
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise ConfigError(f"cannot import module {module!r}: no module named {top!r} on the Python path", path)
    if spec.origin in ("frozen", "built-in") or _imp.is_frozen(top) or _imp.is_builtin(top):
        raise ConfigError(f"refusing to import {module!r}: {top!r} is a frozen or built-in module of Python's "
                          "standard library, not a plugin", path)
    locations = list(spec.submodule_search_locations or []) or [spec.origin or ""]
    if any(_installed(location) for location in locations) and top not in declared_plugins():
        raise ConfigError(f"refusing to import {module!r}: {top!r} is an installed package that does not declare "
                          f"an {PLUGIN_GROUP!r} entry point (see docs/security.md)", path)


def declared_plugins() -> set[str]:
    """Top-level packages that installed distributions declare as erasure plugins (entry point group
    ``erasure.plugins``); reading the metadata runs no code."""
    from importlib.metadata import entry_points

    return {ep.module.split(".")[0] for ep in entry_points(group=PLUGIN_GROUP)}


def import_module(module: str, path: str) -> Any:
    """Import ``module``; whatever it raises, ``SystemExit`` and ``KeyboardInterrupt`` included,
    becomes a :class:`ConfigError` naming it (a real Ctrl-C still stops the program)."""
    with watch_interrupts() as interrupted:
        try:
            return importlib.import_module(module)
        except KeyboardInterrupt as exc:
            if interrupted():
                raise
            raise ConfigError(f"importing module {module!r} raised KeyboardInterrupt", path) from exc
        except SystemExit as exc:
            raise ConfigError(f"importing module {module!r} called sys.exit({exc.code!r})", path) from exc
        except Exception as exc:  # ImportError, or an error inside the module
            raise ConfigError(f"cannot import module {module!r}: {type(exc).__name__}: {exc}", path) from exc


def _check_module_name(module: Any, path: str) -> None:
    parts = module.split(".") if isinstance(module, str) else [""]
    if not all(part.isidentifier() for part in parts):
        raise ConfigError(f"expected a dotted module name like mylab.unlearners, got {module!r}", path)
    if "__main__" in parts:
        raise ConfigError(f"refusing to import {module!r}: a __main__ module runs a program when imported", path)


def _installed(location: str) -> bool:
    """Whether a module file or package folder belongs to the Python installation (standard
    library or site-packages) rather than to the user."""
    resolved = Path(location).resolve()
    if {"site-packages", "dist-packages"} & set(resolved.parts):
        return True
    stdlib = {Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib")}
    return any(resolved.is_relative_to(root) for root in stdlib)


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


# Trial runs of torch classes named in a config, at validation time: they surface what training
# would hit later (an optimizer whose step() needs a closure, a scheduler that divides by zero,
# a loss that does not take logits and class indices, a model with nothing to train).

def _dry_optimizer(cls: type, params: dict) -> Any:
    closure = inspect.signature(cls.step).parameters.get("closure")
    if closure is not None and closure.default is inspect.Parameter.empty:
        raise ConfigError(f"{cls.__name__} needs a closure in step() (it re-evaluates the loss); training and "
                          "the unlearners call step() without one, so choose another optimizer")
    optimizer = cls(_dummy_params(), **params)
    _trial_step(optimizer)
    return optimizer


def _dry_scheduler(cls: type, params: dict) -> Any:
    import torch

    optimizer = torch.optim.SGD(_dummy_params(), lr=0.1)
    scheduler = cls(optimizer, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trial_step(optimizer)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(1.0)
        else:
            scheduler.step()
    return scheduler


def _trial_step(optimizer: Any) -> None:
    import torch

    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = torch.ones_like(p)
    optimizer.step()


def _dry_loss(cls: type, params: dict) -> Any:
    """Build the loss and call it on a single-label batch, else on a multi-label one (which task
    the data has is checked once it is loaded)."""
    import torch

    loss = cls(**params)
    logits = torch.randn(4, 3)
    errors = []
    for targets in (torch.tensor([0, 1, 2, 0]), torch.tensor([[0.0, 1, 1], [1, 0, 0], [0, 0, 1], [1, 1, 0]])):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = loss(logits, targets)
            break
        except Exception as exc:
            errors.append(" ".join(str(exc).split()))
    else:
        raise ConfigError(f"{cls.__name__} does not fit a classification task, which gives a loss logits (N, C) "
                          f"and class indices (N,), or (multi-label) logits (N, L) and 0/1 targets (N, L): {errors[0]}")
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ConfigError(f"{cls.__name__} with these parameters gives {shape}, not one number "
                          "(training needs a scalar loss: reduction 'mean' or 'sum')")
    return loss


def _dry_model(cls: type, params: dict) -> Any:
    accepted = set(inspect.signature(cls.__init__).parameters)
    if accepted & {"input_shape", "num_classes"}:
        return None  # built for the data; checked when built
    model = cls(**params)
    check_trainable(model)
    return model


def check_trainable(model: Any, path: str = "") -> None:
    """A model must have a trainable parameter: with none there is nothing to train or unlearn
    (``torch.nn.Identity`` passes any input through and has none)."""
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"{type(model).__name__} has no trainable parameters: there is nothing to train or unlearn",
                          path)


def _transform_base() -> type:
    from torchvision.transforms import v2

    return v2.Transform


def _dry_transform(cls: type, params: dict) -> Any:
    """Build the transform and apply it to one random float image (3 x 224 x 224): train-time
    augmentation (``training.augment``) gives it one image tensor at a time, or a batch, and needs
    an image tensor back (a transform that needs labels or boxes, or returns a tuple, is refused)."""
    import torch

    transform = cls(**params)
    with torch.random.fork_rng(devices=[]):
        out = transform(torch.rand(3, 224, 224))
    if not isinstance(out, torch.Tensor) or out.dim() != 3:
        raise ConfigError(f"{cls.__name__} does not map an image tensor (C, H, W) to an image tensor "
                          f"(it gave {type(out).__name__}); training.augment needs transforms of images alone")
    return transform


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
    "scheme": _registry_slot("scheme"),
    "model": Slot("model", _module_base, lambda: reg.registry("model"), ("input_shape", "num_classes"), _dry_model),
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
        _dry_loss,
    ),
    "transform": Slot(
        "transform",
        _transform_base,
        lambda: _torch_classes("torchvision.transforms.v2", _transform_base()),
        (),
        _dry_transform,
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
            close = closest(name, known, n=3, cutoff=0.5)
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
    _check_module_name(module_name, path)
    if not attr.isidentifier():
        raise ConfigError(f"expected a dotted class path like package.module.Class, got {name!r}", path)
    module = import_module(module_name, path)
    if not hasattr(module, attr):
        close = closest(attr, [n for n in dir(module) if not n.startswith("_")])
        hint = f"; did you mean {' or '.join(repr(f'{module_name}.{c}') for c in close)}?" if close else ""
        raise ConfigError(f"module {module_name!r} has no class {attr!r}{hint}", path)
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
        except ConfigError as exc:
            exc.path = exc.path or path
            raise
        except Exception as exc:
            raise ConfigError(f"{cls.__name__} rejects these parameters: {' '.join(str(exc).split())}", params_path) from exc
    return cls, dict(params)


use_spec_validator(validate_spec)  # nested specs inside parameters are checked like top-level ones


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
    if slot == "model":
        check_trainable(obj, path)
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
