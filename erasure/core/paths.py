"""Checks for paths and file names that come from a config, made before anything touches the disk."""
from __future__ import annotations

import os
import stat
from typing import Any, BinaryIO

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


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike, limit: int | None = None) -> BinaryIO:
    """Open ``path`` for reading in binary, only if it is a regular file (after links) of at most
    ``limit`` bytes: a FIFO, a device (``/dev/zero``), a socket or a directory raise
    :class:`NotRegularFile` at once (the open does not wait for a FIFO's writer), and so does a
    larger file. Other failures raise ``OSError`` as ``open`` does."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(f"{os.fspath(path)} is {_kind(info.st_mode)}, not a regular file")
        if limit is not None and info.st_size > limit:
            raise NotRegularFile(f"{os.fspath(path)} is larger than {limit:,} bytes ({info.st_size:,} bytes)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (:func:`open_regular`); no more than
    ``limit`` are read even if the file grows meanwhile."""
    with open_regular(path, limit) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise NotRegularFile(f"{os.fspath(path)} is larger than {limit:,} bytes")
    return data


def check_regular_file(path: str | os.PathLike, where: str, what: str = "file") -> None:
    """A config path that names an existing regular file (after links), else a :class:`ConfigError`
    at ``where``: never a FIFO (reading it would wait forever), a device or a directory."""
    try:
        with open_regular(path):
            pass
    except NotRegularFile as exc:
        raise ConfigError(f"expected a regular {what}: {exc}", where) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the {what} {os.fspath(path)!r}: "
                          f"{getattr(exc, 'strerror', None) or exc}", where) from exc


class NotRegularFile(OSError):
    """A path that is not a regular file, or a file larger than its reader accepts."""
