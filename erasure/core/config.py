"""Reading, composing, overriding and checking a config as data.

:func:`read_config` parses JSONC, :func:`compose_config` follows ``include``, :func:`apply_override`
applies ``--set PATH=VALUE``, and :func:`validate_structure` checks the structure against
``erasure/schema/config.schema.json``. Building the components is
:mod:`erasure.execution.experiment`'s (``load_experiment``), above the components it builds.
Every failure is a :class:`ConfigError` naming the file, the JSON path and what was expected.
"""
from __future__ import annotations

import collections
import difflib
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

from erasure.core.errors import ConfigError, join_path
from erasure.core.paths import NotRegularFile, check_path_text, open_regular

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
        with open_regular(path) as f:  # never a FIFO (it would wait for a writer) or a device
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except NotRegularFile as exc:
        raise ConfigError(f"cannot read the config: {exc}", file=file) from exc
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
            try:
                check_path_text(str(target), f"include[{i}]")
                if any(target.resolve() == c.resolve() for c in chain):
                    cycle = " -> ".join(str(c) for c in [*chain, target])
                    raise ConfigError(f"the includes form a cycle: {cycle}", f"include[{i}]")
                found = target.is_file()
            except ConfigError as exc:
                raise exc.in_file(str(file))
            except (OSError, RuntimeError) as exc:  # a symbolic-link loop, a name the file system refuses
                raise ConfigError(f"cannot include {target}: {getattr(exc, 'strerror', None) or exc}",
                                  f"include[{i}]", str(file)) from exc
            if not found:
                raise ConfigError(f"no config file {target} to include (or not a regular file)", f"include[{i}]",
                                  str(file))
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
