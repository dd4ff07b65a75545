"""An experiment built from a config: every component constructed and checked.

``load_experiment(path, overrides)`` reads a config (with its includes), applies ``--set``
overrides, checks the structure (:mod:`erasure.core.config`) and builds every component, so a
config that loads is a config that can run. ``build_experiment`` does the same for a parsed
config. Every failure is a :class:`ConfigError` naming the file, the JSON path and what was
expected. This sits above the components (data, models, unlearners, evaluators) that it builds;
:mod:`erasure.core.config` below it only reads and checks configs as data.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erasure import __version__
from erasure.core import registry
from erasure.core.config import (DEFAULT_EVALUATORS, DEFAULT_WRITERS, apply_override, check_output_dir, check_plain_data,
                                 check_writable, compose_config, join_path_tokens, origin_of, parse_path, set_origin,
                                 validate_structure)
from erasure.core.errors import ConfigError, join_path
from erasure.core.factory import allowed_imports, build, import_user_modules, validate_spec
from erasure.core.params import check_parameters, check_search_space, defined_partitions
from erasure.core.paths import check_file_name, check_path_text, open_regular


@dataclass
class UnlearnerEntry:
    """One unlearner of the config: its label, the built unlearner, its spec (after sweep
    expansion), its search space (the class's, or the entry's ``search``) and, for an entry that a
    ``sweep`` expanded, the swept values."""

    label: str
    unlearner: Any
    spec: dict[str, Any]
    search: dict[str, Any] = field(default_factory=dict)
    swept: dict[str, Any] = field(default_factory=dict)
    tuned: Any = None  # erasure.tuning.protocol.Tuned, once the tuning protocol chose its parameters


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def expand_sweep(entry: dict[str, Any], path: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(spec, swept values)`` for every combination of an entry's ``sweep`` lists (the entry alone,
    without ``sweep``/``search``, when it has none). Each spec sets the swept parameters and is
    labelled with them: ``NegGrad lr=0.001 epochs=5``."""
    spec = {k: v for k, v in entry.items() if k not in ("sweep", "search")}
    sweep = entry.get("sweep")
    if sweep is None:
        return [(spec, {})]
    if not isinstance(sweep, dict) or not sweep:
        raise ConfigError("expected an object of parameter lists, e.g. {\"lr\": [0.001, 0.01]}", join_path(path, "sweep"))
    params = spec.get("parameters") or {}
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"expected a non-empty list of values, got {json.dumps(values)[:60]}",
                              join_path(join_path(path, "sweep"), key))
        if key in params:
            raise ConfigError(f"{key!r} is both swept and set under parameters; keep one",
                              join_path(join_path(path, "sweep"), key))
    base = entry.get("label") or entry["class"].rsplit(".", 1)[-1]
    out = []
    for combo in itertools.product(*sweep.values()):
        swept = dict(zip(sweep, combo))
        label = " ".join([base, *(f"{k}={_format_value(v)}" for k, v in swept.items())])
        out.append(({**spec, "parameters": {**params, **swept}, "label": label}, swept))
    return out


@dataclass
class Experiment:
    """A validated config with every component built (the model is built per seed, once data is known)."""

    name: str
    seeds: list[int]
    device: str
    imports: list[str]
    source: Any
    split: Any
    forget: Any
    model_spec: dict[str, Any]
    recipe: Any
    unlearners: list[UnlearnerEntry]
    evaluators: list[Any]
    output_dir: Path
    writers: list[Any]
    cache_dir: str | None
    cache_enabled: bool
    config: dict[str, Any]
    file: str = "<config>"
    execution: Any = None  # erasure.execution.settings.Execution: how jobs run, never what they compute
    tuning: Any = None  # erasure.execution.settings.Tuning, when the config tunes its unlearners
    unlearning_seeds: list[int] | None = None  # several unlearning runs per original (nested seeds)
    holdout: float | None = None  # tuning: this share of train is the validation split; test is never read
    checkpoint: str | None = None  # the original's weights from a file instead of training
    checkpoint_sha256: str | None = None
    named_partitions: list[Any] = field(default_factory=list)  # data.partitions (PartitionRule), in dependency order
    origins: dict[str, str] = field(default_factory=dict)  # JSON path -> the file (of the includes) that set it

    @functools.cached_property
    def config_hash(self) -> str:
        """Hash of what determines a job's results besides its seed and unlearner, taken over the
        resolved config (defaults filled in), so the file ``config.resolved.json`` has the same hash."""
        resolved = self.resolved_config()
        part = {k: resolved.get(k) for k in ("data", "model", "training", "evaluators", "imports")}
        part["version"] = __version__
        part.get("model", {}).pop("checkpoint", None)  # the file's content counts, not its name

        return hashlib.sha256(json.dumps(part, sort_keys=True, default=str).encode()).hexdigest()[:12]

    @property
    def requests(self) -> list[Any]:
        """The deletion requests in order: ``data.forget`` as a list (one request if it is a single spec)."""
        return list(self.forget) if isinstance(self.forget, list) else [self.forget]

    def file_for(self, path: str) -> str:
        """The config file that set the JSON ``path`` (an included one, or the config itself)."""
        return origin_of(path, self.origins, self.file)

    @property
    def source_spec(self) -> dict[str, Any]:
        """The data source as class and full parameters (what cache keys are made of)."""
        return _spec(self.source, self.config["data"]["source"])

    def resolved_config(self) -> dict[str, Any]:
        """The config with defaults filled in and every component's full parameters."""
        spec = _spec
        cfg = copy.deepcopy(self.config)
        cfg["seeds"], cfg["device"] = self.seeds, self.device
        cfg["imports"] = list(self.imports)
        if self.checkpoint is not None:
            cfg["model"] = {**cfg["model"], "checkpoint": self.checkpoint, "checkpoint_sha256": self.checkpoint_sha256}
        cfg["data"]["source"] = spec(self.source, cfg["data"]["source"])
        written = cfg["data"]["forget"]
        cfg["data"]["forget"] = ([spec(f, w) for f, w in zip(self.forget, written)] if isinstance(self.forget, list)
                                 else spec(self.forget, written))
        cfg["data"]["split"] = _jsonable(vars(self.split))
        rules = {r.name: r.as_config() for r in self.named_partitions}
        if rules:
            cfg["data"]["partitions"] = {name: rules[name] for name in cfg["data"]["partitions"]}
        else:
            cfg["data"].pop("partitions", None)
        cfg["training"] = _jsonable(self.recipe.as_dict())
        cfg["unlearners"] = [dict(spec(e.unlearner, e.spec), label=e.label,
                                  **({"search": {k: d.as_config() for k, d in e.search.items()}}
                                     if self.tuning is not None and e.search else {}))
                             for e in self.unlearners]
        cfg["evaluators"] = [spec(ev, s) for ev, s in zip(self.evaluators, cfg.get("evaluators", DEFAULT_EVALUATORS))]
        cfg["output"] = {"dir": str(self.output_dir),
                         "writers": [spec(w, s) for w, s in zip(self.writers, cfg.get("output", {}).get("writers", DEFAULT_WRITERS))]}
        if self.execution is not None:
            cfg["execution"] = _jsonable(self.execution.as_dict())
        if self.tuning is not None:
            cfg["tuning"] = _jsonable(self.tuning.as_dict())
        if self.unlearning_seeds is not None:
            cfg["unlearning_seeds"] = list(self.unlearning_seeds)
        return cfg


def _spec(obj: Any, cls_spec: dict) -> dict:
    cls_spec = {"class": cls_spec} if isinstance(cls_spec, str) else cls_spec
    return {"class": cls_spec["class"], "parameters": _jsonable(obj.get_params())}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def build_experiment(config: dict[str, Any], base_dir: Path | None = None, check_output: bool = True,
                     import_folders: list[Path] = ()) -> Experiment:
    """Validate the structure and build every component of a parsed config (``check_output``:
    also check that the output directory can be written; workers, which write nothing, skip it;
    ``import_folders``: where the config's ``imports`` are also looked for)."""
    from erasure.data.partitions import Split
    from erasure.execution.settings import Execution, Tuning
    from erasure.models.training import TrainingRecipe, check_loss_fits

    check_plain_data(config)
    validate_structure(config)
    check_file_name(config["name"], "name")  # it names the default output directory
    imports = list(config.get("imports", []))
    import_user_modules(imports, folders=import_folders)
    registry.load_builtins()
    named_partitions, partition_names = _named_partitions(config["data"])
    with allowed_imports(imports), defined_partitions(partition_names):
        data = config["data"]
        source = build(data["source"], "data_source", "data.source")
        split_params = data.get("split", {})
        check_parameters(Split, split_params, "data.split")
        split = Split(**split_params)
        if isinstance(data["forget"], list):  # deletion requests, applied in order
            forget = [build(f, "forget", f"data.forget[{i}]") for i, f in enumerate(data["forget"])]
        else:
            forget = build(data["forget"], "forget", "data.forget")
        _check_forget_classes(source, forget)
        model_spec = {k: v for k, v in config["model"].items() if k not in ("checkpoint", "checkpoint_sha256")}
        validate_spec(model_spec, "model", "model")
        checkpoint, checkpoint_sha256 = _checkpoint(config["model"])
        training = config.get("training", {})
        check_parameters(TrainingRecipe, training, "training")
        recipe = TrainingRecipe(**training)
        if checkpoint is not None and recipe.scheme is not None:
            raise ConfigError("a training scheme trains its own original: drop training.scheme or model.checkpoint",
                              "training.scheme")
        if source.task is not None:  # the task is known before the data is loaded: check the loss now
            check_loss_fits(recipe.loss, source.task)
        unlearners: list[UnlearnerEntry] = []
        seen: dict[str, int] = {}
        for i, entry in enumerate(config["unlearners"]):
            path = f"unlearners[{i}]"
            for spec, swept in expand_sweep(entry, path):
                unlearner = _build_swept(spec, path, swept, entry.get("sweep", {}))
                label = spec.get("label") or spec["class"].rsplit(".", 1)[-1]
                if label in seen:
                    raise ConfigError(
                        f"duplicate label {label!r} (also unlearners[{seen[label]}]); give each entry a distinct \"label\"",
                        join_path(path, "label"),
                    )
                seen[label] = i
                _check_scheme(unlearner, recipe.scheme, path)
                search = type(unlearner).search_space
                if "search" in entry:
                    search = check_search_space(type(unlearner), entry["search"], join_path(path, "search"))
                unlearners.append(UnlearnerEntry(label, unlearner, spec, dict(search), swept))
        evaluators = [build(e, "evaluator", f"evaluators[{i}]") for i, e in enumerate(config.get("evaluators", DEFAULT_EVALUATORS))]
        check_ranking(config.get("ranking"), evaluators)
        output = config.get("output", {})
        writer_specs = output.get("writers", DEFAULT_WRITERS)
        writers = [build(w, "writer", f"output.writers[{i}]") for i, w in enumerate(writer_specs)]
    execution = _settings(Execution, config.get("execution", {}), "execution")
    tuning = _settings(Tuning, config["tuning"], "tuning") if "tuning" in config else None
    seeds = list(config.get("seeds", [0]))
    if tuning is not None and set(tuning.seeds) & set(seeds):
        both = sorted(set(tuning.seeds) & set(seeds))
        raise ConfigError(f"tuning seeds must differ from the evaluation seeds (both have {both})", "tuning.seeds")
    if "dir" in output:
        check_output_dir(output["dir"], "output.dir")
    out_dir = Path(output.get("dir", f"results/{config['name']}")).expanduser()
    if base_dir is not None and not out_dir.is_absolute():
        out_dir = base_dir / out_dir
    if check_output:
        check_writable(out_dir, "output.dir")
    cache = config.get("cache", {})
    if cache.get("dir") is not None and cache.get("enabled", True):
        check_path_text(cache["dir"], "cache.dir")
        check_writable(Path(cache["dir"]).expanduser(), "cache.dir", writable=False)
    return Experiment(
        name=config["name"], seeds=seeds, device=config.get("device", "auto"),
        imports=imports, source=source, split=split, forget=forget, model_spec=model_spec, recipe=recipe,
        unlearners=unlearners, evaluators=evaluators, output_dir=out_dir, writers=writers,
        cache_dir=cache.get("dir"), cache_enabled=cache.get("enabled", True), config=config, execution=execution,
        checkpoint=checkpoint, checkpoint_sha256=checkpoint_sha256, named_partitions=named_partitions,
        tuning=tuning, unlearning_seeds=config.get("unlearning_seeds"),
    )


def _check_forget_classes(source: Any, forget: Any) -> None:
    """Where the source knows its classes without loading, a forget set's classes are checked now
    (``--validate`` included); elsewhere when the data is loaded."""
    num_classes = source.known_num_classes()
    if num_classes is None:
        return
    specs = [(f, f"data.forget[{i}]") for i, f in enumerate(forget)] if isinstance(forget, list) else [(forget, "data.forget")]
    for spec, path in specs:
        try:
            spec.check_num_classes(num_classes)
        except ConfigError as exc:
            exc.path = join_path(join_path(path, "parameters"), exc.path)
            raise


def check_ranking(ranking: dict[str, Any] | None, evaluators: list[Any]) -> None:
    """Every metric the config's ``ranking`` names (without a pattern) has an "as gold" target
    declared by one of its evaluators; a pattern must match one declared "as gold" metric."""
    import fnmatch

    from erasure.results.targets import lookup, targets_of

    targets = targets_of(evaluators)
    gold = sorted(k for k, t in targets.items() if t.kind == "gold")
    for i, name in enumerate((ranking or {}).get("metrics", [])):
        if any(c in name for c in "*?["):
            ok = any(fnmatch.fnmatchcase(k, name) for k in gold)
        else:
            ok = (t := lookup(name, targets)) is not None and t.kind == "gold"
        if not ok:
            raise ConfigError(f"{name!r} is no \"as gold\" metric of this config's evaluators; they rank on: "
                              f"{', '.join(gold) or 'none'}", f"ranking.metrics[{i}]")


def _check_scheme(unlearner: Any, configured: dict | None, path: str) -> None:
    """A method that needs its original trained under a scheme runs under the config's
    ``training.scheme`` only if that is the same scheme (an absent one lets the runner use the
    method's)."""
    from erasure.models.schemes import same_scheme, scheme_spec
    from erasure.models.schemes.base import build_scheme

    needed = unlearner.training_scheme()
    if needed is None or configured is None or same_scheme(needed, configured):
        return
    name = type(unlearner).__name__
    raise ConfigError(f"{name} needs its original trained under {json.dumps(scheme_spec(build_scheme(needed)))}, but "
                      f"training.scheme is {json.dumps(scheme_spec(build_scheme(configured)))}: make them agree, or "
                      f"drop training.scheme and the runner trains {name}'s original under its own scheme", path)


def _settings(cls: type, params: dict[str, Any], path: str) -> Any:
    """A settings dataclass (``execution``, ``tuning``) checked like a component's parameters."""
    check_parameters(cls, params, path)
    settings = cls(**params)
    try:
        settings.check()
    except ConfigError as exc:
        exc.path = join_path(path, exc.path)
        raise
    return settings


def _build_swept(spec: dict[str, Any], path: str, swept: dict[str, Any], sweep: dict[str, list]) -> Any:
    """Build one expanded entry; an error in a swept value points at it (``unlearners[0].sweep.lr[2]``)."""
    try:
        return build(spec, "unlearner", path)
    except ConfigError as exc:
        for key, value in swept.items():
            prefix = join_path(join_path(path, "parameters"), key)
            if exc.path == prefix or exc.path.startswith(prefix + ".") or exc.path.startswith(prefix + "["):
                exc.path = f"{join_path(join_path(path, 'sweep'), key)}[{sweep[key].index(value)}]" + exc.path[len(prefix):]
        raise


def _named_partitions(data: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """The rules of ``data.partitions`` and every partition name a parameter may use."""
    from erasure.data.partitions import BUILTIN_PARTITIONS, REQUEST_PARTITION, parse_partitions

    several = isinstance(data["forget"], list) and len(data["forget"]) > 1
    builtin = [*BUILTIN_PARTITIONS, *([REQUEST_PARTITION] if several else [])]
    rules = parse_partitions(data.get("partitions", {}), builtin)
    return rules, [*builtin, *(r.name for r in rules)]


def _checkpoint(model: dict[str, Any]) -> tuple[str | None, str | None]:
    """``model.checkpoint`` and its SHA-256 (checked against ``model.checkpoint_sha256`` when the
    config pins one, as ``config.resolved.json`` does)."""
    path = model.get("checkpoint")
    if path is None:
        if model.get("checkpoint_sha256") is not None:
            raise ConfigError("'checkpoint_sha256' needs a 'checkpoint'", "model.checkpoint_sha256")
        return None, None
    check_path_text(path, "model.checkpoint")
    try:
        file = Path(path).expanduser()
    except RuntimeError as exc:  # "~user" of no such user
        raise ConfigError(f"cannot expand {path!r}: {exc}", "model.checkpoint") from exc
    check_path_text(str(file), "model.checkpoint")
    digest = hashlib.sha256()
    try:
        with open_regular(file) as f:  # never a FIFO or a device
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError as exc:
        raise ConfigError(f"no checkpoint file at {file}", "model.checkpoint") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the checkpoint {file}: {exc.strerror or exc}", "model.checkpoint") from exc
    sha = digest.hexdigest()
    pinned = model.get("checkpoint_sha256")
    if pinned is not None and pinned != sha:
        raise ConfigError(f"{file} has SHA-256 {sha[:16]}..., not the pinned {str(pinned)[:16]}...: the file changed",
                          "model.checkpoint_sha256")
    return str(path), sha


def plugin_folders(config_file: str | Path) -> list[Path]:
    """Where a config's own modules are looked for: its folder, then the working directory."""
    return [Path(config_file).expanduser().resolve().parent, Path.cwd()]


def load_experiment(path: str | Path, overrides: list[str] = (), imports: list[str] = ()) -> Experiment:
    """Read (with the files it includes), override, validate and build; every error carries the
    name of the file that set the key at fault."""
    origins: dict[str, str] = {}
    try:
        config, origins = compose_config(path)
        for assignment in overrides:
            apply_override(config, assignment)
            set_origin(origins, join_path_tokens(parse_path(assignment.split("=", 1)[0].strip())), str(path))
        if imports:
            config["imports"] = list(dict.fromkeys([*config.get("imports", []), *imports]))
        experiment = build_experiment(config, import_folders=plugin_folders(path))
        experiment.file = str(path)
        experiment.origins = origins
        return experiment
    except ConfigError as exc:
        raise exc.in_file(origin_of(exc.path, origins, str(path)))
