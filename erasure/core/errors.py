"""User-facing errors. The CLI turns a :class:`ConfigError` into exit code 2 and one message."""
from __future__ import annotations


class ConfigError(Exception):
    """A config that cannot be run: names the file, the JSON path and what was expected."""

    def __init__(self, message: str, path: str = "", file: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.file = file

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.path) if part)
        return f"{where}: {self.message}" if where else self.message

    def in_file(self, file: str) -> "ConfigError":
        """Attach the config file's name, keeping the path and message."""
        if self.file is None:
            self.file = file
        return self


def join_path(path: str, key: str | int) -> str:
    """``join_path("unlearners[2]", "epochs") == "unlearners[2].epochs"``; ints become ``[i]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key
