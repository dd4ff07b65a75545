"""Reading, overriding, validating and building an experiment config.

``load_experiment(path, overrides)`` parses JSONC, applies ``--set`` overrides,
checks the structure against ``erasure/schema/config.schema.json`` and builds
every component, so a config that loads is a config that can run. Every failure
is a :class:`ConfigError` naming the file, the JSON path and what was expected.
"""
from __future__ import annotations

import collections
import copy
import difflib
import itertools
import functools
import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erasure import __version__
from erasure.core import registry
from erasure.core.errors import ConfigError, join_path
from erasure.core.factory import allowed_imports, build, import_user_modules, validate_spec
from erasure.core.params import check_parameters, check_search_space, defined_partitions
from erasure.core.paths import check_file_name, check_path_text

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "config.schema.json"
DEFAULT_EVALUATORS = [{"class": "Accuracy"}]
DEFAULT_WRITERS = [{"class": "CSVWriter"}]
#: Larger config files are refused: a config describes an experiment; data belongs in files a data source reads.
MAX_CONFIG_BYTES = 1 << 20
#: Deeper nesting of objects and lists is refused (real configs stay below 10 levels).
MAX_DEPTH = 32

log = logging.getLogger("erasure.config")


def read_config(path: str | Path) -> dict[str, Any]:
    """Parse a JSONC file of at most ``MAX_CONFIG_BYTES`` of UTF-8; a syntax error names its line and
    column; a key given twice in one object is reported as a warning (the last value is used, as in JSON)."""
    import json5

    file = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the config: {exc.strerror or exc}", file=file) from exc
    except ValueError as exc:  # a NUL in the path
        raise ConfigError(f"cannot read the config: {exc}", file=file) from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"the config is larger than {MAX_CONFIG_BYTES >> 20} MiB; a config describes an experiment, "
                          "data belongs in files that a data source reads", file=file)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the config is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})", file=file) from exc
    try:
        try:
            data = json.loads(text, object_pairs_hook=_Object)  # plain JSON: the same result, much faster
        except json.JSONDecodeError:
            data = json5.loads(text, object_pairs_hook=_Object)
    except RecursionError as exc:
        raise ConfigError(f"the config is nested too deeply (at most {MAX_DEPTH} levels)", file=file) from exc
    except ValueError as exc:
        match = re.match(r"<string>:(\d+) (.*) at column (\d+)", str(exc))
        where = f"line {match[1]}, column {match[3]}: {match[2]}" if match else " ".join(str(exc).split())
        raise ConfigError(f"invalid JSONC at {where}", file=file) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"expected a JSON object at the top level, got {type(data).__name__}", file=file)
    try:
        check_plain_data(data)
    except ConfigError as exc:
        raise exc.in_file(file)
    duplicates: list[str] = []
    data = _plain(data, "", duplicates)
    for where in duplicates:
        log.warning("%s: %s: this key is given more than once in its object; the last value is used", file, where)
    return data


class _Object(dict):
    """A parsed JSON object that remembers the keys given more than once."""

    def __init__(self, pairs: list[tuple[str, Any]]):
        super().__init__(pairs)
        self.duplicates = [k for k, n in collections.Counter(k for k, _ in pairs).items() if n > 1]


def _plain(node: Any, path: str, duplicates: list[str]) -> Any:
    """Plain dicts and lists again, collecting the JSON paths of duplicate keys."""
    if isinstance(node, dict):
        duplicates += [join_path(path, k) for k in getattr(node, "duplicates", ())]
        return {k: _plain(v, join_path(path, k), duplicates) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, join_path(path, i), duplicates) for i, v in enumerate(node)]
    return node


def check_plain_data(config: Any) -> None:
    """Nesting of at most ``MAX_DEPTH`` levels, strings and keys without NUL, finite numbers
    (walked without recursion, so that a deep config fails here and not in a recursive step later)."""
    stack: list[tuple[Any, str, int]] = [(config, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"nested too deeply (at most {MAX_DEPTH} levels of objects and lists)", path)
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str) or "\0" in key:
                    raise ConfigError(f"expected keys without NUL characters, got {key!r}", path or "(top level)")
                stack.append((value, join_path(path, key), depth + 1))
        elif isinstance(node, list):
            stack.extend((value, join_path(path, i), depth + 1) for i, value in enumerate(node))
        elif isinstance(node, str) and "\0" in node:
            raise ConfigError(f"expected text without NUL characters, got {node[:60]!r}", path)
        elif isinstance(node, float) and not math.isfinite(node):
            raise ConfigError(f"expected a finite number, got {node!r}", path)


_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(text: str) -> list[str | int]:
    """``"unlearners[1].parameters.epochs"`` → ``["unlearners", 1, "parameters", "epochs"]``."""
    tokens: list[str | int] = []
    position = 0
    for match in _TOKEN.finditer(text):
        gap = text[position : match.start()]
        if gap not in ("", "."):
            break
        tokens.append(match[1] if match[1] is not None else int(match[2]))
        position = match.end()
    if not tokens or position != len(text):
        raise ConfigError(f"cannot parse the path {text!r}; expected e.g. unlearners[1].parameters.epochs", "--set")
    return tokens


def join_path_tokens(tokens: list[str | int]) -> str:
    """``["unlearners", 1, "parameters"]`` → ``"unlearners[1].parameters"`` (the inverse of :func:`parse_path`)."""
    path = ""
    for token in tokens:
        path = join_path(path, token)
    return path


def apply_override(config: dict[str, Any], assignment: str) -> None:
    """Apply ``PATH=VALUE`` in place; VALUE is JSON5 (``[0]``, ``1e-3``, ``true``) or else a string."""
    import json5

    if "=" not in assignment:
        raise ConfigError(f"--set expects PATH=VALUE, got {assignment!r}", "--set")
    path_text, value_text = assignment.split("=", 1)
    tokens = parse_path(path_text.strip())
    try:
        value = json5.loads(value_text)
    except ValueError:
        value = value_text
    except RecursionError as exc:
        raise ConfigError(f"--set {path_text}: the value is nested too deeply", "--set") from exc
    node: Any = config
    walked = ""
    for i, token in enumerate(tokens):
        last = i == len(tokens) - 1
        if isinstance(token, int):
            if not isinstance(node, list) or token >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise ConfigError(f"--set {assignment}: there is no item [{token}] ({size} items)", join_path(walked, token))
        elif not isinstance(node, dict):
            raise ConfigError(f"--set {assignment}: {walked} is not an object", walked)
        if last:
            node[token] = value
        else:
            if isinstance(token, str) and token not in node:
                node[token] = [] if isinstance(tokens[i + 1], int) else {}
            node = node[token]
        walked = join_path(walked, token)


JSON_TYPES = {"array": "a list", "object": "an object", "string": "a string", "integer": "an integer",
              "number": "a number", "boolean": "a boolean", "null": "null"}


def _schema_path(error: Any) -> str:
    return join_path_tokens(list(error.absolute_path))


def validate_structure(config: dict[str, Any]) -> None:
    """Check the file's structure against the JSON Schema (per-class parameters are checked later)."""
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(list(e.absolute_path)), str(e.message)))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    path = _schema_path(error)
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        key = extra[0] if extra else "?"
        close = difflib.get_close_matches(key, allowed, n=2, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"unknown key {key!r}{hint} (allowed: {', '.join(a for a in allowed if a != '$schema')})",
                          join_path(path, key))
    if error.validator == "required":
        raise ConfigError(f"missing required key: {error.message}", path)
    value = error.validator_value
    wording = {
        "type": lambda: "expected " + " or ".join(JSON_TYPES.get(v, v) for v in ([value] if isinstance(value, str) else value)),
        "minimum": lambda: f"expected a value >= {value}",
        "maximum": lambda: f"expected a value <= {value}",
        "exclusiveMinimum": lambda: f"expected a value > {value}",
        "exclusiveMaximum": lambda: f"expected a value < {value}",
        "minItems": lambda: f"expected at least {value} item(s)",
        "maxItems": lambda: f"expected at most {value} item(s)",
        "uniqueItems": lambda: "expected distinct items",
        "pattern": lambda: f"expected a string matching {value}",
        "enum": lambda: "expected one of " + ", ".join(json.dumps(v) for v in value),
    }
    expected = wording[error.validator]() if error.validator in wording else None
    given = json.dumps(error.instance)[:60]
    message = f"{expected}, got {given}" if expected else error.message
    raise ConfigError(message, path or "(top level)")


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
    tuning: Any = None  # erasure.tuning.settings.Tuning, when the config tunes its unlearners
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


def check_writable(directory: Path, path: str, *, writable: bool = True) -> None:
    """The directory exists (and is writable), or can be created."""
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"cannot write to {directory}: {probe} is not a directory", path)
    if writable and not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to {directory}: {probe} is not writable", path)


def check_output_dir(value: str, path: str) -> None:
    """``output.dir``: a path the file system takes, without ``..`` (a relative one stays under the working directory)."""
    check_path_text(value, path)
    if ".." in Path(value).parts:
        raise ConfigError(f"expected a directory without '..' components, got {value!r}", path)


def build_experiment(config: dict[str, Any], base_dir: Path | None = None, check_output: bool = True) -> Experiment:
    """Validate the structure and build every component of a parsed config (``check_output``:
    also check that the output directory can be written; workers, which write nothing, skip it)."""
    from erasure.data.partitions import Split
    from erasure.execution.settings import Execution
    from erasure.models.training import TrainingRecipe
    from erasure.tuning.settings import Tuning

    check_plain_data(config)
    validate_structure(config)
    check_file_name(config["name"], "name")  # it names the default output directory
    imports = list(config.get("imports", []))
    import_user_modules(imports)
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
        model_spec = {k: v for k, v in config["model"].items() if k not in ("checkpoint", "checkpoint_sha256")}
        validate_spec(model_spec, "model", "model")
        checkpoint, checkpoint_sha256 = _checkpoint(config["model"])
        training = config.get("training", {})
        check_parameters(TrainingRecipe, training, "training")
        recipe = TrainingRecipe(**training)
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
                search = type(unlearner).search_space
                if "search" in entry:
                    search = check_search_space(type(unlearner), entry["search"], join_path(path, "search"))
                unlearners.append(UnlearnerEntry(label, unlearner, spec, dict(search), swept))
        evaluators = [build(e, "evaluator", f"evaluators[{i}]") for i, e in enumerate(config.get("evaluators", DEFAULT_EVALUATORS))]
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
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"no checkpoint file at {file}", "model.checkpoint")
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    sha = digest.hexdigest()
    pinned = model.get("checkpoint_sha256")
    if pinned is not None and pinned != sha:
        raise ConfigError(f"{file} has SHA-256 {sha[:16]}..., not the pinned {str(pinned)[:16]}...: the file changed",
                          "model.checkpoint_sha256")
    return str(path), sha


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
        experiment = build_experiment(config)
        experiment.file = str(path)
        experiment.origins = origins
        return experiment
    except ConfigError as exc:
        raise exc.in_file(origin_of(exc.path, origins, str(path)))


#: At most this many files make up one config with everything it includes.
MAX_CONFIG_FILES = 64


def compose_config(path: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Read a config and the files it includes.

    ``"include": ["base.jsonc", ...]`` names files relative to the including one; they are read
    (with their own includes) and deep-merged in order, then the including file's keys on top:
    objects merge key by key, any other value (lists too) replaces the earlier one, and so does a
    component naming another ``class`` (its parameters are the other class's). A file that
    includes itself, directly or through others, is refused with the chain. Returns the config
    without ``include`` and the file that set each JSON path (see :func:`origin_of`).
    """
    read: list[Path] = []

    def load(file: Path, chain: list[Path]) -> tuple[dict[str, Any], dict[str, str]]:
        read.append(file)
        if len(read) > MAX_CONFIG_FILES:
            raise ConfigError(f"more than {MAX_CONFIG_FILES} config files are included", "include", str(chain[0]))
        own = read_config(file)
        includes = own.pop("include", [])
        includes = [includes] if isinstance(includes, str) else includes
        if not isinstance(includes, list) or not all(isinstance(name, str) and name for name in includes):
            raise ConfigError("expected a list of config files (relative to this one)", "include", str(file))
        config: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for i, name in enumerate(includes):
            target = file.parent / name
            if any(target.resolve() == c.resolve() for c in chain):
                cycle = " -> ".join(str(c) for c in [*chain, target])
                raise ConfigError(f"the includes form a cycle: {cycle}", f"include[{i}]", str(file))
            if not target.is_file():
                raise ConfigError(f"no config file {target} to include", f"include[{i}]", str(file))
            _merge(config, origins, *load(target, [*chain, target]), str(target))
        _merge(config, origins, own, {}, str(file))
        return config, origins

    file = Path(path)
    return load(file, [file])


def _merge(config: dict[str, Any], origins: dict[str, str], layer: dict[str, Any], layer_origins: dict[str, str],
           layer_file: str, path: str = "") -> None:
    """Deep-merge ``layer`` (read from ``layer_file``, whose own includes set ``layer_origins``) into ``config``."""
    for key, value in layer.items():
        where = join_path(path, key)
        earlier = config.get(key)
        if isinstance(value, dict) and isinstance(earlier, dict) and value.get("class", earlier.get("class")) == \
                earlier.get("class"):  # objects merge, unless they are components of different classes
            _merge(earlier, origins, value, layer_origins, layer_file, where)
            continue
        config[key] = value
        set_origin(origins, where, origin_of(where, layer_origins, layer_file))
        origins.update({p: f for p, f in layer_origins.items() if _within(p, where) and p != where})


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def origin_of(path: str, origins: dict[str, str], default: str) -> str:
    """The file that set ``path``: the entry of ``origins`` for it or its nearest enclosing key, else ``default``."""
    enclosing = [p for p in origins if _within(path, p)]
    return origins[max(enclosing, key=len)] if enclosing else default


def set_origin(origins: dict[str, str], path: str, file: str) -> None:
    """Record that ``file`` set ``path`` (and everything under it)."""
    for p in [p for p in origins if _within(p, path)]:
        del origins[p]
    origins[path] = file
