"""Checks for paths and file names that come from a config, made before anything touches the disk."""
from __future__ import annotations

from typing import Any

from erasure.core.errors import ConfigError

NAME_MAX = 255  # bytes in one path component (Linux, macOS, Windows)
PATH_MAX = 4096  # bytes in a whole path (Linux)


def _encoded_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def check_path_text(value: Any, path: str) -> None:
    """A path the file system can take: a non-empty string without NUL, at most
    ``PATH_MAX`` bytes, no component longer than ``NAME_MAX`` bytes."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"expected a path, got {value!r}", path)
    if "\0" in value:
        raise ConfigError(f"expected a path without NUL characters, got {value!r}", path)
    if _encoded_length(value) > PATH_MAX:
        raise ConfigError(f"expected a path of at most {PATH_MAX} bytes, got {_encoded_length(value)} bytes", path)
    longest = max(value.replace("\\", "/").split("/"), key=_encoded_length)
    if _encoded_length(longest) > NAME_MAX:
        raise ConfigError(f"expected path components of at most {NAME_MAX} bytes, got one of "
                          f"{_encoded_length(longest)} bytes ({longest[:40]!r}...)", path)


def check_file_name(name: Any, path: str) -> None:
    """A plain file name that stays inside its directory and is not hidden there: no separators,
    no ``..``, not absolute, no leading dot (``.profile``), no control characters, not over-long."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"expected a file name, got {name!r}", path)
    problem = None
    if "/" in name or "\\" in name:
        problem = "it contains a path separator"
    elif name.startswith("."):
        problem = "it starts with a dot"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "it contains a control character"
    elif _encoded_length(name) > NAME_MAX:
        problem = f"it is longer than {NAME_MAX} bytes"
    if problem:
        raise ConfigError(f"expected a plain file name, got {name!r} ({problem})", path)
