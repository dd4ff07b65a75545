"""Tabular datasets of the UCI Machine Learning Repository through ``ucimlrepo.fetch_ucirepo``."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from erasure.core.errors import ConfigError
from erasure.core.params import PathText, PositiveInt
from erasure.core.paths import check_regular_file
from erasure.data.dataset import Dataset, DataSource

CATEGORICAL_TYPES = {"categorical", "binary", "nominal", "ordinal"}


def _clean(values: Any) -> Any:
    """Strings stripped of blanks and of a trailing '.' (Adult's test labels read '<=50K.')."""
    return values.astype(str).str.strip().str.rstrip(".")


def encode_labels(values: Any) -> tuple[Tensor, list[str]]:
    """Codes of the sorted distinct values (as cleaned strings)."""
    cleaned = _clean(values)
    names = sorted(cleaned.unique())
    lookup = {name: i for i, name in enumerate(names)}
    return torch.tensor(cleaned.map(lookup).to_numpy(), dtype=torch.long), names


def tabular_dataset(features: Any, target: Any, categorical: set[str], attribute_columns: list[str],
                    drop_attributes: bool, name: str) -> Dataset:
    """Numeric columns first (raw, NaN kept for ``prepare``), then one-hot categorical columns."""
    import numpy as np
    import pandas as pd

    missing = [c for c in attribute_columns if c not in features.columns]
    if missing:
        raise ConfigError(f"{name} has no column {missing[0]!r} (columns: {', '.join(map(str, features.columns))})",
                          "attribute_columns")
    attributes, attribute_values = {}, {}
    for column in attribute_columns:
        attributes[column], attribute_values[column] = encode_labels(features[column].fillna("<missing>"))
    model_columns = [c for c in features.columns if not (drop_attributes and c in attribute_columns)]
    categorical_cols = [c for c in model_columns
                        if c in categorical or not pd.api.types.is_numeric_dtype(features[c])]
    numeric_cols = [c for c in model_columns if c not in categorical_cols]
    numeric = features[numeric_cols].to_numpy(dtype=np.float32) if numeric_cols else np.zeros((len(features), 0), np.float32)
    blocks = [numeric]
    if categorical_cols:
        cats = features[categorical_cols].astype("string").fillna("<missing>").apply(lambda s: s.str.strip())
        blocks.append(pd.get_dummies(cats, dtype=np.float32).to_numpy())
    inputs = torch.as_tensor(np.concatenate(blocks, axis=1))
    targets, classes = encode_labels(target)
    info = {"numeric_features": len(numeric_cols), "class_names": classes, "attribute_values": attribute_values}
    return Dataset(inputs, targets, len(classes), attributes, name=name, info=info)


def standardise_numeric(dataset: Dataset, train_idx: Tensor) -> Dataset:
    """Standardise the first ``info["numeric_features"]`` columns with train statistics; NaN → 0 (the train mean)."""
    k = dataset.info.get("numeric_features", 0)
    if k == 0:
        return dataset
    x = dataset.inputs.clone()
    numeric = x[:, :k]
    train = numeric[train_idx.to(x.device)]
    mean = torch.nanmean(train, 0)
    std = torch.sqrt(torch.nanmean((train - mean) ** 2, 0)).clamp_min(1e-8)
    x[:, :k] = torch.nan_to_num((numeric - mean) / std, nan=0.0)
    from dataclasses import replace

    return replace(dataset, inputs=x)


class UCISource(DataSource):
    """A UCI repository dataset by ``id`` (e.g. 2 = Adult) or ``name``, or a local CSV at ``path``.

    Numeric columns are standardised with training statistics (missing → train
    mean), categorical ones one-hot encoded (missing is a category), the target
    label-encoded (sorted values; a trailing '.' is dropped). ``attribute_columns``
    become per-sample attributes coded by their sorted values (Adult ``sex``:
    Female=0, Male=1) for ``GroupForget`` / ``FeatureForget``; with
    ``drop_attributes`` the model does not see them. ``target`` names the label
    column (default: the repository's first target). UCI sets have no official
    split: ``data.split`` applies.
    """

    def __init__(self, id: PositiveInt | None = None, name: str | None = None, path: PathText | None = None,
                 target: str | None = None, attribute_columns: list[str] = [],  # noqa: B006
                 drop_attributes: bool = True, categorical_columns: list[str] = []):  # noqa: B006
        self.id = id
        self.name = name
        self.path = path
        self.target = target
        self.attribute_columns = attribute_columns
        self.drop_attributes = drop_attributes
        self.categorical_columns = categorical_columns

    def check(self) -> None:
        if sum(v is not None for v in (self.id, self.name, self.path)) != 1:
            raise ConfigError("give exactly one of 'id', 'name' or 'path'", "id")
        if self.path is not None and self.target is None:
            raise ConfigError("a local CSV ('path') needs 'target', the label column", "target")

    def _fetch(self) -> tuple[Any, Any, set[str], str]:
        if self.path is not None:
            import pandas as pd

            check_regular_file(self.path, "path", "CSV file")  # never a FIFO or a device
            frame = pd.read_csv(self.path, skipinitialspace=True, na_values=["?"])
            if self.target not in frame.columns:
                raise ConfigError(f"{self.path} has no column {self.target!r}", "target")
            return frame.drop(columns=[self.target]), frame[self.target], set(), self.path
        from ucimlrepo import fetch_ucirepo

        which = f"id={self.id}" if self.id is not None else f"name={self.name!r}"
        try:
            repo = fetch_ucirepo(id=self.id) if self.id is not None else fetch_ucirepo(name=self.name)
        except Exception as exc:
            raise RuntimeError(
                f"could not fetch UCI dataset {which} ({type(exc).__name__}: {exc}). Offline? Save it once where "
                f"there is network, e.g. `fetch_ucirepo({which}).data.original.to_csv('data.csv', index=False)`, "
                "then set the source's 'path' to that CSV and 'target' to its label column."
            ) from exc
        targets = repo.data.targets
        target = self.target or targets.columns[0]
        if target not in targets.columns:
            raise ConfigError(f"UCI {which} has no target {target!r} (targets: {', '.join(targets.columns)})", "target")
        variables = repo.variables
        categorical = {n for n, t in zip(variables["name"], variables["type"]) if str(t).lower() in CATEGORICAL_TYPES}
        label = str(getattr(repo.metadata, "name", None) or which)
        return repo.data.features, targets[target], categorical, label

    def load(self) -> Dataset:
        features, target, categorical, label = self._fetch()
        keep = target.notna().to_numpy()
        features, target = features[keep].reset_index(drop=True), target[keep].reset_index(drop=True)
        return tabular_dataset(features, target, categorical | set(self.categorical_columns),
                               list(self.attribute_columns), self.drop_attributes, label)

    def prepare(self, dataset: Dataset, train_idx: Tensor) -> Dataset:
        return standardise_numeric(dataset, train_idx)
