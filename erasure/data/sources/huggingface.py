"""Hugging Face ``datasets`` (hub names, local files or ``save_to_disk`` folders): images, text, tabular."""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from erasure.core.errors import ConfigError
from erasure.core.params import NonNegativeInt, PathText, PositiveFloat, PositiveInt
from erasure.core.paths import check_regular_file
from erasure.data.dataset import Dataset, DataSource
from erasure.data.sources.torchvision import build_transform, check_transform, image_inputs
from erasure.data.sources.uci import encode_labels, standardise_numeric

_WORD = re.compile(r"\w+")


def fit_vocabulary(texts: list[str], size: int) -> dict[str, int]:
    """The ``size - 2`` most frequent lower-cased words (ties by first sight); 0 = padding, 1 = unknown."""
    counts = Counter(w for t in texts for w in _WORD.findall(t.lower()))
    return {w: i + 2 for i, (w, _) in enumerate(counts.most_common(size - 2))}


def encode_texts(texts: list[str], vocabulary: dict[str, int], max_length: int) -> Tensor:
    """Token ids ``(N, max_length)``: words cut at ``max_length``, padded with 0, unknown words 1."""
    out = torch.zeros(len(texts), max_length, dtype=torch.long)
    for row, text in enumerate(texts):  # once per dataset, not per epoch
        ids = [vocabulary.get(w, 1) for w in _WORD.findall(text.lower())[:max_length]]
        out[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
    return out


def swap_padding(ids: Tensor, pad: int) -> Tensor:
    """Ids with ``pad`` and 0 exchanged (its own inverse): tokenizers pad with their own id, the models here with 0."""
    if pad == 0:
        return ids
    return torch.where(ids == pad, 0, torch.where(ids == 0, pad, ids))


class ImageColumn(torch.utils.data.Dataset):
    """Item ``i``: the decoded image in ``column`` of row ``i`` of a ``datasets.Dataset``, then ``transform``."""

    def __init__(self, table: Any, column: str, transform: Any) -> None:
        self.table = table
        self.column = column
        self.transform = transform

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> Tensor:
        return self.transform(self.table[i][self.column])


def _local_files(value: Any) -> list[str]:
    """The strings in ``value`` (a path, or ``data_files``: a string, list or dict of them) that
    name an existing local file system entry other than a directory."""
    if isinstance(value, dict):
        return [f for v in value.values() for f in _local_files(v)]
    if isinstance(value, list):
        return [f for v in value for f in _local_files(v)]
    return [value] if isinstance(value, str) and os.path.lexists(value) and not os.path.isdir(value) else []


class HuggingFaceSource(DataSource):
    """A ``datasets`` dataset: ``load_dataset(path, name, data_files=..., revision=...)``.

    ``path`` may also be a folder written by ``save_to_disk`` (read with
    ``load_from_disk``). ``split`` maps this benchmark's ``train``/``test`` to the
    dataset's split names (default: its own ``train`` and ``test``; a single
    ``split`` string loads only that one and ``data.split`` divides it).
    ``input_column``: an image column (→ ``(C, H, W)`` floats in [0, 1]), a text
    column (→ token ids, computed once), or a list of numeric columns (tabular,
    standardised on train). Images are decoded in ``image_mode`` (e.g. ``"RGB"``, so grey and
    colour images mix; ``datasets.Image(mode=...)``), then go through ``transform``
    (deterministic ``torchvision.transforms``, as for ``TorchVisionSource``; ``Resize`` when
    sizes differ); sets larger than ``max_memory_gb`` as float32 stay lazy (``num_workers``
    DataLoader workers). Text uses a word vocabulary of ``vocab_size`` fitted on the training
    split (the official one, else the seeded one, in ``prepare``), or the named ``tokenizer``
    (``transformers``, loaded only then; ``HFTextClassifier`` with the same path reads its
    ids). ``cache_dir``: where ``datasets`` caches (default its own). ``label_column``: ClassLabel or any values (label-encoded).
    ``attribute_columns`` become per-sample attributes (label-encoded).
    """

    def __init__(self, path: PathText, name: str | None = None, data_files: Any = None,
                 split: str | dict[str, str] | None = None, revision: str | None = None,
                 input_column: str | list[str] = "text", label_column: str = "label",
                 attribute_columns: list[str] = [],  # noqa: B006
                 tokenizer: str | None = None, max_length: PositiveInt = 128, vocab_size: PositiveInt = 20000,
                 cache_dir: str | None = None, image_mode: str | None = None,
                 transform: list[dict[str, Any]] | None = None, max_memory_gb: PositiveFloat = 4.0,
                 num_workers: NonNegativeInt = 2):
        self.path = path
        self.name = name
        self.data_files = data_files
        self.split = split
        self.revision = revision
        self.input_column = input_column
        self.label_column = label_column
        self.attribute_columns = attribute_columns
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.vocab_size = vocab_size
        self.cache_dir = cache_dir
        self.image_mode = image_mode
        self.transform = transform
        self.max_memory_gb = max_memory_gb
        self.num_workers = num_workers

    def check(self) -> None:
        if isinstance(self.split, dict) and set(self.split) - {"train", "test"}:
            raise ConfigError("split maps 'train' and 'test' to the dataset's split names", "split")
        check_transform(self.transform)

    def _splits(self) -> dict[str, Any]:
        import datasets

        for key, value in (("path", self.path), ("data_files", self.data_files)):
            for name in _local_files(value):  # never a FIFO or a device (datasets would wait or read forever)
                check_regular_file(name, key, "data file")
        local = Path(self.path)
        if local.is_dir() and ((local / "dataset_dict.json").exists() or (local / "state.json").exists()):
            loaded = datasets.load_from_disk(str(local))
        else:
            loaded = datasets.load_dataset(self.path, self.name, data_files=self.data_files,
                                          revision=self.revision, cache_dir=self.cache_dir)
        if isinstance(loaded, datasets.Dataset):
            return {"all": loaded}
        if isinstance(self.split, str):
            return {"all": loaded[self.split]}
        wanted = self.split or {"train": "train", "test": "test"}
        if all(v in loaded for v in wanted.values()) and len(wanted) == 2:
            return {k: loaded[v] for k, v in wanted.items()}
        if self.split:
            raise ConfigError(f"the dataset has splits {list(loaded)}, not {list(wanted.values())}", "split")
        return {"all": datasets.concatenate_datasets(list(loaded.values()))}

    def _column(self, table: Any, column: str) -> Any:
        if column not in table.column_names:
            raise ConfigError(f"no column {column!r} (columns: {', '.join(table.column_names)})", "input_column")
        return table[column]

    def load(self) -> Dataset:
        import datasets
        import pandas as pd

        parts = self._splits()
        table = datasets.concatenate_datasets(list(parts.values())) if len(parts) > 1 else next(iter(parts.values()))
        sizes = [len(p) for p in parts.values()]
        splits = {}
        if "train" in parts:
            splits = {"train": torch.arange(sizes[0]), "test": torch.arange(sizes[0], sum(sizes))}
        n_train = sizes[0] if splits else len(table)
        info: dict[str, Any] = {}
        label = self.path if self.name is None else f"{self.path}/{self.name}"
        columns = self.input_column if isinstance(self.input_column, list) else [self.input_column]
        for column in columns:
            self._column(table, column)
        feature = table.features[columns[0]]
        if isinstance(self.input_column, list):
            frame = table.select_columns(columns).to_pandas()
            inputs = torch.as_tensor(frame.to_numpy(dtype="float32"))
            info["numeric_features"] = inputs.shape[1]
        elif isinstance(feature, datasets.Image):
            images = table.select_columns(columns)
            if self.image_mode is not None:
                images = images.cast_column(columns[0], datasets.Image(mode=self.image_mode))
            described = f"{label}@{self.revision}|{self.split}|{columns[0]}|{self.image_mode}|{self.transform}"
            inputs = image_inputs(ImageColumn(images, columns[0], build_transform(self.transform)), described,
                                  self.max_memory_gb, self.num_workers)
        elif isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
            texts = [str(t) for t in table[columns[0]]]
            inputs, facts = self._tokenise(texts, texts[:n_train])
            info.update(facts)
            self._texts = None if splits or self.tokenizer else texts  # refitted on train in prepare
        else:
            inputs = torch.as_tensor(table.select_columns(columns).with_format("numpy")[:][columns[0]]).float()
        label_feature = table.features.get(self.label_column)
        if label_feature is None:
            raise ConfigError(f"no column {self.label_column!r} (columns: {', '.join(table.column_names)})", "label_column")
        if isinstance(label_feature, datasets.ClassLabel):
            targets = torch.as_tensor(table[self.label_column], dtype=torch.long)
            info["class_names"] = list(label_feature.names)
        elif pd.api.types.is_integer_dtype(pd.Series(table[self.label_column][:10])):
            targets = torch.as_tensor(table[self.label_column], dtype=torch.long)
            info["class_names"] = [str(i) for i in range(int(targets.max()) + 1)]
        else:
            targets, info["class_names"] = encode_labels(pd.Series(table[self.label_column]))
        attributes = {}
        for column in self.attribute_columns:
            values = pd.Series(self._column(table, column))
            attributes[column] = (torch.as_tensor(values.to_numpy(), dtype=torch.long)
                                  if pd.api.types.is_integer_dtype(values) else encode_labels(values)[0])
        return Dataset(inputs, targets, len(info["class_names"]), attributes, splits, label, info)

    def _tokenise(self, texts: list[str], train_texts: list[str]) -> tuple[Tensor, dict[str, int]]:
        """Token ids (0 = padding) and the facts a model needs: ``vocab_size``, and with a tokenizer its ``pad_token_id``."""
        if self.tokenizer is None:
            vocabulary = fit_vocabulary(train_texts, self.vocab_size)
            return encode_texts(texts, vocabulary, self.max_length), {"vocab_size": self.vocab_size}
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise RuntimeError("a named tokenizer needs the 'transformers' package (pip install transformers)") from exc
        tok = AutoTokenizer.from_pretrained(self.tokenizer)
        ids = tok(texts, truncation=True, max_length=self.max_length, padding="max_length")["input_ids"]
        ids = torch.as_tensor(ids, dtype=torch.long)
        pad = tok.pad_token_id or 0
        return swap_padding(ids, pad), {"vocab_size": len(tok), "pad_token_id": pad}

    def prepare(self, dataset: Dataset, train_idx: Tensor) -> Dataset:
        """Standardise tabular columns on train; without an official split, refit the vocabulary on train."""
        texts = getattr(self, "_texts", None)
        if texts is not None and len(texts) == len(dataset):
            from dataclasses import replace

            vocabulary = fit_vocabulary([texts[i] for i in train_idx.tolist()], self.vocab_size)
            return replace(dataset, inputs=encode_texts(texts, vocabulary, self.max_length).to(dataset.inputs.device))
        return standardise_numeric(dataset, train_idx)
