"""ParquetWriter: the results CSV exported to Parquet (``results.parquet``) when the run ends."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from erasure.core.errors import ConfigError
from erasure.results.jsonl import csv_path, typed_row
from erasure.results.writers import COLUMNS, Writer, read_rows


def results_frame(csv: str | Path) -> Any:
    """The complete rows of a results CSV as a pandas DataFrame with typed columns: nullable
    integers for ``seed`` and ``step``, floats for ``value`` and ``wall_seconds`` (NaN where
    empty), strings otherwise."""
    import pandas as pd

    frame = pd.DataFrame([typed_row(r) for r in read_rows(csv)], columns=COLUMNS)
    types = {c: "Int64" for c in ("seed", "step")} | {c: "float64" for c in ("value", "wall_seconds")}
    return frame.astype({**{c: "string" for c in COLUMNS}, **types})


class ParquetWriter(Writer):
    """``output.dir/filename`` (default ``results.parquet``): every complete row of the results CSV,
    rewritten (atomically) when the run ends, interrupted or not; read it with
    ``pandas.read_parquet``. Needs ``pyarrow`` (or ``fastparquet``)."""

    def __init__(self, filename: str = "results.parquet"):
        self.filename = filename

    def check(self) -> None:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            try:
                import fastparquet  # noqa: F401
            except ImportError:
                raise ConfigError("ParquetWriter needs pyarrow (pip install pyarrow) or fastparquet", "") from None

    def write(self, rows: list[dict[str, Any]]) -> None:
        pass  # the whole file is written at close, from the CSV

    def close(self) -> None:
        path = self.run.output_dir / self.filename
        tmp = path.with_name(path.name + ".tmp")
        results_frame(csv_path(self.run)).to_parquet(tmp, index=False)
        tmp.replace(path)
