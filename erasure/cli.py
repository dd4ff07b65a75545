"""Command line: ``python main.py CONFIG [--set PATH=VALUE ...] [--validate] ...``.

Exit codes: 0 success, 1 a component failed (error rows were written) or the
run could not go on, 2 a bad config or bad arguments, 130 interrupted.
"""
from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any, Sequence

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
                   help="list registered components (kinds: data_source, forget, model, unlearner(s), evaluator(s), writer(s), scheme(s))")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the model cache")
    p.add_argument("--overwrite", action="store_true", help="discard earlier results in output.dir and rerun every job")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module that registers components (like the config's \"imports\")")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar: one log line per finished job and reference model instead")
    p.add_argument("--executor", choices=["serial", "local", "ray"],
                   help="where jobs run (default: the config's \"execution\", else serial)")
    p.add_argument("--workers", type=int, metavar="N", help="local executor: worker processes (default: cores // cpus per job)")
    p.add_argument("--cpus-per-job", type=int, metavar="N", help="torch threads of every job (default 1)")
    p.add_argument("--ray-address", metavar="ADDRESS", help="ray executor: the cluster to join (default: a local Ray)")
    p.add_argument("--version", action="version", version=f"erasure {__version__}")
    return p.parse_args(argv)


def describe_parameters(cls: type, kind: str = "") -> str:
    """``epochs=5, lr=0.0001, optimizer=None`` from a constructor's signature; for a model, the
    parameters that the data provides (``input_shape``, ``num_classes``) are left out."""
    provided = {"input_shape", "num_classes"} if kind == "model" else set()
    parts = []
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in provided or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        parts.append(name if p.default is inspect.Parameter.empty else f"{name}={p.default!r}")
    return ", ".join(parts)


_ABBREVIATIONS = {"e.g", "i.e", "al", "vs", "cf", "etc", "approx", "resp", "Fig", "Eq", "no"}
_QUOTES = {'"': '"', "“": "”"}


def first_sentence(cls: type) -> str:
    """The first sentence of the class's own docstring (not a base class's), on one line: up to the
    first ``.``, ``!`` or ``?`` that is followed by a space or the end, outside parentheses and
    quotes (a paper title keeps its question mark), and not after an abbreviation such as "et al."."""
    doc = " ".join(inspect.cleandoc(cls.__dict__.get("__doc__") or "").split())
    depth, quote = 0, None
    for i, ch in enumerate(doc):
        if quote:
            quote = None if ch == quote else quote
        elif ch in _QUOTES:
            quote = _QUOTES[ch]
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        elif ch in ".!?" and depth == 0 and (i + 1 == len(doc) or doc[i + 1] == " "):
            words = doc[:i].split()
            if not words or words[-1] not in _ABBREVIATIONS:
                return doc[: i + 1]
    return doc


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
            lines.append(f"  {name}({describe_parameters(cls, k)})")
            doc = first_sentence(cls)
            if doc:
                lines += textwrap.wrap(doc, 100, initial_indent=" " * 6, subsequent_indent=" " * 6)
            space = getattr(cls, "search_space", None)
            if space:
                text = "search: " + ", ".join(f"{p} {describe_dimension(d)}" for p, d in space.items())
                lines += textwrap.wrap(text, 100, initial_indent=" " * 6, subsequent_indent=" " * 14)
    return "\n".join(lines)


def describe_dimension(dimension: Any) -> str:
    """``log-uniform [1e-05, 0.01]``, ``int [1, 10]``, ``one of [...]``."""
    from erasure.core.params import Choice, IntRange

    if isinstance(dimension, Choice):
        return f"one of {list(dimension.values)}"
    kind = "int" if isinstance(dimension, IntRange) else "log-uniform" if dimension.log else "uniform"
    return f"{kind} [{dimension.low:g}, {dimension.high:g}]"


def one_line(text: str) -> str:
    """``text`` on one line: line breaks, NUL and other unprintable characters shown as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.imports:
            from erasure.core.factory import import_user_modules
            from erasure.execution.experiment import plugin_folders

            import_user_modules(args.imports, "--import", plugin_folders(args.config) if args.config else [Path.cwd()])
        if args.list:
            print(list_components(args.list))
            return 0
        if not args.config:
            print("error: give a config file (or --list); see --help", file=sys.stderr)
            return 2
        from erasure.execution.experiment import load_experiment

        overrides = list(args.overrides)
        for flag, key in (("executor", "executor"), ("workers", "workers"), ("cpus_per_job", "cpus_per_job"),
                          ("ray_address", "ray_address")):
            value = getattr(args, flag)
            if value is not None:
                overrides.append(f"execution.{key}={json.dumps(value)}")
        if args.ray_address and not args.executor:
            overrides.append('execution.executor="ray"')
        if args.workers and not args.executor:
            overrides.append('execution.executor="local"')
        experiment = load_experiment(args.config, overrides, args.imports)
        from erasure.execution.runner import Runner
        from erasure.tuning.protocol import tune

        options = dict(use_cache=not args.no_cache, overwrite=args.overwrite, progress=not args.no_progress, tuner=tune)
        if "sweep" in experiment.config:  # sub-experiments, one per combination of the swept values
            from erasure.tuning.sweep import expand, run_sweep

            if args.validate:
                subs = expand(experiment)
                for _, sub in subs:
                    Runner(sub, use_cache=False)
                print(f"{args.config}: OK ({len(subs)} sub-experiments of {len(experiment.unlearners)} unlearners)")
                return 0
            return run_sweep(experiment, lambda sub: Runner(sub, **options).run())
        if args.validate:
            Runner(experiment, use_cache=False)  # also checks the device
            print(f"{args.config}: OK ({len(experiment.unlearners)} unlearners, {len(experiment.evaluators)} evaluators, "
                  f"{len(experiment.seeds)} seeds)")
            return 0
        return Runner(experiment, **options).run().exit_code
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
        from erasure.execution.runner import RunError

        label = "error" if isinstance(exc, RunError) else f"unexpected error ({type(exc).__name__})"
        print(f"{label}: {one_line(str(exc))}\n(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


COMMANDS = {
    "run": "run an experiment: erasure run CONFIG [options]",
    "validate": "build every component of a config and run nothing: erasure validate CONFIG [--set ...]",
    "list": "list registered components and their parameters: erasure list [KIND]",
    "report": "an offline HTML report of results: erasure report RESULTS... -o report.html",
    "summarize": "rebuild summary.csv and print the statistics: erasure summarize RESULTS.csv",
    "meta-eval": "test a config's metrics on pools of models with and without D_f: erasure meta-eval CONFIG",
}


def console(argv: Sequence[str] | None = None) -> int:
    """The ``erasure`` command: ``erasure run|validate|list|report|summarize|meta-eval ...`` (``python main.py
    CONFIG`` is ``erasure run CONFIG``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: erasure COMMAND [ARGS]\n\ncommands:")
        for name, text in COMMANDS.items():
            print(f"  {name:10s} {text}")
        print("\n`erasure COMMAND --help` shows a command's options; `erasure --version` the version.")
        return 0 if args else 2
    if args[0] == "--version":
        print(f"erasure {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command == "run":
        return main(rest)
    if command == "validate":
        return main([*rest, "--validate"])
    if command == "list":
        return main(["--list", *(rest or ["all"])])
    if command == "report":
        from erasure.report import main as report_main

        return report_main(rest)
    if command == "summarize":
        from erasure.summarize import main as summarize_main

        return summarize_main(rest)
    if command == "meta-eval":
        from erasure.meta_eval import main as meta_eval_main

        return meta_eval_main(rest)
    print(f"erasure: unknown command {command!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
    return 2
