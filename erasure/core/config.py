"""Reading, overriding, validating and building an experiment config.

``load_experiment(path, overrides)`` parses JSONC, applies ``--set`` overrides,
checks the structure against ``erasure/schema/config.schema.json`` and builds
every component, so a config that loads is a config that can run. Every failure
is a :class:`ConfigError` naming the file, the JSON path and what was expected.
"""
from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from erasure import __version__
from erasure.core import registry
from erasure.core.errors import ConfigError, join_path
from erasure.core.factory import allowed_imports, build, import_user_modules, validate_spec
from erasure.core.params import check_parameters

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "config.schema.json"
DEFAULT_EVALUATORS = [{"class": "Accuracy"}]
DEFAULT_WRITERS = [{"class": "CSVWriter"}]


def read_config(path: str | Path) -> dict[str, Any]:
    """Parse a JSONC file; a syntax error names its line and column."""
    import json5

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the config: {exc.strerror or exc}", file=str(path)) from exc
    try:
        data = json5.loads(text)
    except ValueError as exc:
        match = re.match(r"<string>:(\d+) (.*) at column (\d+)", str(exc))
        where = f"line {match[1]}, column {match[3]}: {match[2]}" if match else str(exc)
        raise ConfigError(f"invalid JSONC at {where}", file=str(path)) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"expected a JSON object at the top level, got {type(data).__name__}", file=str(path))
    return data


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
    path = ""
    for part in error.absolute_path:
        path = join_path(path, part)
    return path


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
        "exclusiveMinimum": lambda: f"expected a value > {value}",
        "exclusiveMaximum": lambda: f"expected a value < {value}",
        "minItems": lambda: f"expected at least {value} item(s)",
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
    label: str
    unlearner: Any
    spec: dict[str, Any]


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
    checkpoint: str | None = None  # the original's weights from a file instead of training
    checkpoint_sha256: str | None = None

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
        cfg["training"] = _jsonable(self.recipe.as_dict())
        cfg["unlearners"] = [dict(spec(e.unlearner, e.spec), label=e.label) for e in self.unlearners]
        cfg["evaluators"] = [spec(ev, s) for ev, s in zip(self.evaluators, cfg.get("evaluators", DEFAULT_EVALUATORS))]
        cfg["output"] = {"dir": str(self.output_dir),
                         "writers": [spec(w, s) for w, s in zip(self.writers, cfg.get("output", {}).get("writers", DEFAULT_WRITERS))]}
        if self.execution is not None:
            cfg["execution"] = _jsonable(self.execution.as_dict())
        return cfg


def _spec(obj: Any, cls_spec: dict) -> dict:
    cls_spec = {"class": cls_spec} if isinstance(cls_spec, str) else cls_spec
    return {"class": cls_spec["class"], "parameters": _jsonable(obj.get_params())}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def check_writable(directory: Path, path: str) -> None:
    """The output directory exists and is writable, or can be created."""
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"cannot write to {directory}: {probe} is not a directory", path)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to {directory}: {probe} is not writable", path)


def build_experiment(config: dict[str, Any], base_dir: Path | None = None, check_output: bool = True) -> Experiment:
    """Validate the structure and build every component of a parsed config (``check_output``:
    also check that the output directory can be written; workers, which write nothing, skip it)."""
    from erasure.data.partitions import Split
    from erasure.execution.settings import Execution
    from erasure.models.training import TrainingRecipe

    validate_structure(config)
    imports = list(config.get("imports", []))
    import_user_modules(imports)
    registry.load_builtins()
    with allowed_imports(imports):
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
            unlearner = build(entry, "unlearner", path)
            label = entry.get("label") or entry["class"].rsplit(".", 1)[-1]
            if label in seen:
                raise ConfigError(
                    f"duplicate label {label!r} (also unlearners[{seen[label]}]); give each entry a distinct \"label\"",
                    join_path(path, "label"),
                )
            seen[label] = i
            unlearners.append(UnlearnerEntry(label, unlearner, entry))
        evaluators = [build(e, "evaluator", f"evaluators[{i}]") for i, e in enumerate(config.get("evaluators", DEFAULT_EVALUATORS))]
        output = config.get("output", {})
        writer_specs = output.get("writers", DEFAULT_WRITERS)
        writers = [build(w, "writer", f"output.writers[{i}]") for i, w in enumerate(writer_specs)]
    execution_params = config.get("execution", {})
    check_parameters(Execution, execution_params, "execution")
    execution = Execution(**execution_params)
    try:
        execution.check()
    except ConfigError as exc:
        exc.path = join_path("execution", exc.path)
        raise
    out_dir = Path(output.get("dir", f"results/{config['name']}")).expanduser()
    if base_dir is not None and not out_dir.is_absolute():
        out_dir = base_dir / out_dir
    if check_output:
        check_writable(out_dir, "output.dir")
    cache = config.get("cache", {})
    return Experiment(
        name=config["name"], seeds=list(config.get("seeds", [0])), device=config.get("device", "auto"),
        imports=imports, source=source, split=split, forget=forget, model_spec=model_spec, recipe=recipe,
        unlearners=unlearners, evaluators=evaluators, output_dir=out_dir, writers=writers,
        cache_dir=cache.get("dir"), cache_enabled=cache.get("enabled", True), config=config, execution=execution,
        checkpoint=checkpoint, checkpoint_sha256=checkpoint_sha256,
    )


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
    """Read, override, validate and build; every error carries the file name."""
    try:
        config = read_config(path)
        for assignment in overrides:
            apply_override(config, assignment)
        if imports:
            config["imports"] = list(dict.fromkeys([*config.get("imports", []), *imports]))
        experiment = build_experiment(config)
        experiment.file = str(path)
        return experiment
    except ConfigError as exc:
        raise exc.in_file(str(path))
