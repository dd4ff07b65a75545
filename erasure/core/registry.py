"""Component base class and per-kind registries.

Every configurable piece (data source, forget spec, model, unlearner, evaluator,
writer) subclasses :class:`Component`. A base class opens a registry with
``class Unlearner(Component, kind="unlearner")``; its subclasses register
themselves by class name when their module is imported, so a contributor writes
one class in one file and names it in a config.

Following scikit-learn, a constructor stores its parameters unchanged under the
same names and does nothing else; :meth:`Component.get_params` reads them back
from the signature, so a built component dumps to the config that rebuilds it.
"""
from __future__ import annotations

import inspect
from typing import Any, ClassVar

from erasure.core.errors import closest

_REGISTRIES: dict[str, dict[str, type]] = {}
_BASES: dict[str, type] = {}


class RegistryError(KeyError):
    """A name that is not registered, or registered twice."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class Component:
    """Base of everything a config can name.

    ``class Foo(Base, register=False)`` keeps a class out of the registry
    (abstract helpers, test doubles).
    """

    kind: ClassVar[str] = ""
    #: How the contract test (tests/test_contract.py) exercises this class: "parameters"
    #: (small but valid settings, e.g. few shadow models) and optionally "forget" (a forget
    #: spec, e.g. {"class": "FeatureForget", "parameters": {"attribute": "group"}}).
    contract_config: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, kind: str | None = None, register: bool = True, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if kind is not None:
            if kind in _BASES:
                raise RegistryError(f"component kind {kind!r} is already defined by {_BASES[kind].__qualname__}")
            cls.kind = kind
            _BASES[kind] = cls
            _REGISTRIES[kind] = {}
            return
        if not register or inspect.isabstract(cls) or cls.__name__.startswith("_") or not cls.kind:
            return
        registry = _REGISTRIES[cls.kind]
        previous = registry.get(cls.__name__)
        if previous is not None and _qualified(previous) != _qualified(cls):
            raise RegistryError(
                f"{cls.kind} name {cls.__name__!r} is already registered by module "
                f"{previous.__module__!r}; rename the class in {cls.__module__!r}"
            )
        registry[cls.__name__] = cls

    @classmethod
    def param_names(cls) -> list[str]:
        """Constructor parameter names, in signature order."""
        return [
            name
            for name, p in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def check(self) -> None:
        """Cross-parameter validation, run by the factory after construction.

        Raise :class:`~erasure.core.errors.ConfigError` with the offending
        parameter's name as ``path``; the factory prefixes the config path.
        """

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments this component was built with."""
        return {name: getattr(self, name) for name in self.param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def kinds() -> list[str]:
    """Every registered component kind."""
    return sorted(_REGISTRIES)


def base_of(kind: str) -> type:
    return _BASES[kind]


def registry(kind: str) -> dict[str, type]:
    """The classes registered for ``kind`` (name -> class), after loading the built-ins."""
    load_builtins()
    if kind not in _REGISTRIES:
        raise RegistryError(f"unknown component kind {kind!r}; known kinds: {', '.join(kinds())}")
    return dict(sorted(_REGISTRIES[kind].items()))


def lookup(kind: str, name: str) -> type:
    """The class registered as ``name`` for ``kind``; a miss suggests the closest names."""
    known = registry(kind)
    if name in known:
        return known[name]
    close = closest(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise RegistryError(f"no {kind} named {name!r}{hint} Registered: {', '.join(known) or 'none'}")


_LOADED = False
PLUGIN_GROUP = "erasure.plugins"
_PLUGIN_MODULES: list[str] = []


def load_builtins() -> None:
    """Import every built-in component module, then every installed plugin, so that the registries are full.

    A plugin is an installed package that declares an entry point in the ``erasure.plugins``
    group (``[project.entry-points."erasure.plugins"] mylab = "mylab.components"``); loading it
    imports that module, whose components then register like built-in ones, without ``imports``.
    Installing a package is trusting it: its module runs like any imported code. A plugin that
    fails to import is reported (a warning naming it) and skipped.
    """
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import importlib
    import pkgutil

    for package in ("data", "data.sources", "models", "models.schemes", "unlearners", "evaluators", "results"):
        pkg = importlib.import_module(f"erasure.{package}")
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"erasure.{package}.{info.name}")
    load_plugins()


def load_plugins() -> list[str]:
    """Import the modules of installed ``erasure.plugins`` entry points; their module names."""
    import logging
    from importlib.metadata import entry_points

    for entry in entry_points(group=PLUGIN_GROUP):
        module = entry.value.split(":")[0]
        if module in _PLUGIN_MODULES:
            continue
        try:
            entry.load()
        except Exception as exc:  # a broken plugin must not stop every run; say which one
            logging.getLogger("erasure").warning("plugin %r (%s) failed to load: %s: %s",
                                                 entry.name, entry.value, type(exc).__name__, exc)
            continue
        _PLUGIN_MODULES.append(module)
    return list(_PLUGIN_MODULES)


def plugin_modules() -> tuple[str, ...]:
    """Modules of the installed plugins loaded so far (dotted class paths may point into them)."""
    return tuple(_PLUGIN_MODULES)
