"""Command line: ``python main.py CONFIG [--set PATH=VALUE ...] [--validate] ...``.

Exit codes: 0 success, 1 a component failed (error rows were written) or the
run could not go on, 2 a bad config or bad arguments, 130 interrupted.
"""
from __future__ import annotations

import argparse
import inspect
import logging
import sys
from typing import Sequence

from erasure import __version__
from erasure.core.errors import ConfigError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python main.py",
        description="erasure: run a machine-unlearning benchmark described by a JSONC config.",
        epilog="Exit codes: 0 ok, 1 a component failed, 2 bad config, 130 interrupted.",
    )
    p.add_argument("config", nargs="?", help="path to a .jsonc experiment config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a key, e.g. --set seeds=[0] --set unlearners[1].parameters.epochs=1")
    p.add_argument("--validate", action="store_true", help="build every component, run nothing")
    p.add_argument("--list", nargs="?", const="all", metavar="KIND",
                   help="list registered components (kinds: data_source, forget, model, unlearner(s), evaluator(s), writer(s))")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the model cache")
    p.add_argument("--overwrite", action="store_true", help="discard earlier results in output.dir and rerun every job")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module that registers components (like the config's \"imports\")")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--version", action="version", version=f"erasure {__version__}")
    return p.parse_args(argv)


def describe_parameters(cls: type) -> str:
    """``epochs=5, lr=0.0001, optimizer=None`` from a constructor's signature (framework-provided ones left out)."""
    provided = {"input_shape", "num_classes"}
    parts = []
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in provided or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        parts.append(name if p.default is inspect.Parameter.empty else f"{name}={p.default!r}")
    return ", ".join(parts)


def list_components(kind: str) -> str:
    from erasure.core import registry

    registry.load_builtins()
    kinds = registry.kinds()
    wanted = kinds if kind == "all" else [kind.rstrip("s") if kind.rstrip("s") in kinds else kind]
    unknown = [k for k in wanted if k not in kinds]
    if unknown:
        raise ConfigError(f"unknown kind {unknown[0]!r}; kinds: {', '.join(kinds)}", "--list")
    lines = []
    for k in wanted:
        lines.append(f"{k}:")
        for name, cls in registry.registry(k).items():
            doc = (inspect.getdoc(cls) or "").split("\n")[0]
            lines.append(f"  {name}({describe_parameters(cls)})")
            if doc:
                lines.append(f"      {doc}")
    return "\n".join(lines)


def one_line(text: str) -> str:
    """``text`` on one line: line breaks, NUL and other unprintable characters shown as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.imports:
            from erasure.core.factory import import_user_modules

            import_user_modules(args.imports, "--import")
        if args.list:
            print(list_components(args.list))
            return 0
        if not args.config:
            print("error: give a config file (or --list); see --help", file=sys.stderr)
            return 2
        from erasure.core.config import load_experiment

        experiment = load_experiment(args.config, args.overrides, args.imports)
        if args.validate:
            from erasure.core.runner import Runner

            Runner(experiment, use_cache=False)  # also checks the device
            print(f"{args.config}: OK ({len(experiment.unlearners)} unlearners, {len(experiment.evaluators)} evaluators, "
                  f"{len(experiment.seeds)} seeds)")
            return 0
        from erasure.core.runner import Runner

        runner = Runner(experiment, use_cache=not args.no_cache, overwrite=args.overwrite, progress=not args.no_progress)
        return runner.run().exit_code
    except ConfigError as exc:
        if args.debug:
            raise
        print(f"config error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished jobs are in the results file; rerun to resume", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from erasure.core.runner import RunError

        label = "error" if isinstance(exc, RunError) else f"unexpected error ({type(exc).__name__})"
        print(f"{label}: {one_line(str(exc))}\n(rerun with --debug for the traceback)", file=sys.stderr)
        return 1
