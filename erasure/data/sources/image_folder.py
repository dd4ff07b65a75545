"""A lab's own images: a folder plus a CSV of labels and attributes, or torchvision's ``ImageFolder`` layout."""
from __future__ import annotations

import os
import stat
from pathlib import Path, PurePath
from typing import Any

import torch
from torch import Tensor

from erasure.core.errors import ConfigError
from erasure.core.params import NonNegativeInt, PositiveFloat
from erasure.core.paths import check_regular_file
from erasure.data.dataset import Dataset, DataSource, check_num_classes
from erasure.data.sources.torchvision import build_transform, check_transform, image_inputs
from erasure.data.sources.uci import encode_labels


class ImageFiles(torch.utils.data.Dataset):
    """Item ``i``: the image file ``files[i]`` read with torchvision's ``default_loader`` (RGB), then ``transform``."""

    def __init__(self, files: list[Path], transform: Any) -> None:
        self.files = files
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tensor:
        from torchvision.datasets.folder import default_loader

        return self.transform(default_loader(str(self.files[i])))


def column_codes(values: Any) -> tuple[Tensor, list[str] | None]:
    """Non-negative integers kept as they are (names None); any other values coded by sorted value (with their names)."""
    import pandas as pd

    if pd.api.types.is_float_dtype(values) and values.notna().all() and (values == values.round()).all():
        values = values.astype("int64")
    if pd.api.types.is_integer_dtype(values) and (values >= 0).all():
        return torch.tensor(values.to_numpy(dtype="int64")), None
    return encode_labels(values.fillna("<missing>"))


def regular_file(path: str | Path) -> bool:
    """Whether ``path`` is a regular file (after links); an existing FIFO, device or socket is refused,
    since reading it would wait forever or never end."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise ConfigError(f"{path} is not a regular file (a FIFO, a device or a socket); remove it", "root")
    return stat.S_ISREG(mode)


def regular_image(path: str) -> bool:
    """``ImageFolder``'s file filter: an image's suffix, and a regular file (:func:`regular_file`)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

    return has_file_allowed_extension(path, IMG_EXTENSIONS) and regular_file(path)


class ImageFolderSource(DataSource):
    """Images under ``root``, labelled by a CSV (``labels``) or by their class subfolders.

    With ``labels`` (a CSV such as ``file,label,identity,age``): ``file_column`` holds each image's
    path relative to ``root``, ``label_column`` its class (integers >= 0 kept, other values coded by
    sorted value; rows without a label are dropped), ``attribute_columns`` become per-sample
    attributes coded the same way (for ``GroupForget``; the codes of non-integer columns are in
    ``Dataset.info["attribute_values"]``), and ``split_column`` (values ``train``/``test``; other
    rows are in neither) gives an official split. Without ``labels``: torchvision's ``ImageFolder``
    layout (``root/<class>/<image>``, classes in sorted folder order), with ``test_root`` in the
    same layout as the official test set. Without an official split, ``data.split`` applies.
    Images are read as RGB; ``transform`` (deterministic ``torchvision.transforms``, as for
    ``TorchVisionSource``) must bring them to one size; sets larger than ``max_memory_gb`` as
    float32 stay lazy. https://pytorch.org/vision/stable/generated/torchvision.datasets.ImageFolder.html
    """

    def __init__(self, root: str, labels: str | None = None, file_column: str = "file", label_column: str = "label",
                 attribute_columns: list[str] = [],  # noqa: B006 (read-only default, stored as given)
                 split_column: str | None = None, test_root: str | None = None,
                 transform: list[dict[str, Any]] | None = None, max_memory_gb: PositiveFloat = 4.0,
                 num_workers: NonNegativeInt = 2):
        self.root = root
        self.labels = labels
        self.file_column = file_column
        self.label_column = label_column
        self.attribute_columns = attribute_columns
        self.split_column = split_column
        self.test_root = test_root
        self.transform = transform
        self.max_memory_gb = max_memory_gb
        self.num_workers = num_workers

    def check(self) -> None:
        if self.labels is None:
            for key in ("attribute_columns", "split_column"):
                if getattr(self, key):
                    raise ConfigError(f"{key!r} reads columns of the 'labels' CSV, and none is given", key)
        elif self.test_root is not None:
            raise ConfigError("with a 'labels' CSV, the official split is its 'split_column', not 'test_root'", "test_root")
        check_transform(self.transform)

    def load(self) -> Dataset:
        transform = build_transform(self.transform)
        base, labels = self._folders(transform) if self.labels is None else self._table(transform)
        inputs = image_inputs(base, f"ImageFolderSource@{self.root}|{self.labels}|{self.test_root}|{self.transform}",
                              self.max_memory_gb, self.num_workers)
        return Dataset(inputs, num_classes=len(labels["info"]["class_names"]), name=Path(self.root).name, **labels)

    def _folders(self, transform: Any) -> tuple[Any, dict[str, Any]]:
        """The images and the :class:`Dataset` fields of an ``ImageFolder`` layout."""
        from torch.utils.data import ConcatDataset
        from torchvision.datasets import ImageFolder

        parts = [ImageFolder(self.root, transform=transform, is_valid_file=regular_image)]
        if self.test_root is not None:
            parts.append(ImageFolder(self.test_root, transform=transform, is_valid_file=regular_image))
            if parts[1].classes != parts[0].classes:
                raise RuntimeError(f"the class folders of test_root ({', '.join(parts[1].classes)}) differ from "
                                   f"root's ({', '.join(parts[0].classes)})")
        targets = torch.cat([torch.as_tensor(p.targets, dtype=torch.long) for p in parts])
        sizes = [len(p) for p in parts]
        splits = {"train": torch.arange(sizes[0]), "test": torch.arange(sizes[0], sum(sizes))} if len(parts) == 2 else {}
        return ConcatDataset(parts), {"targets": targets, "splits": splits, "info": {"class_names": list(parts[0].classes)}}

    def _table(self, transform: Any) -> tuple[Any, dict[str, Any]]:
        """The images and the :class:`Dataset` fields of a labels CSV."""
        import pandas as pd

        check_regular_file(self.labels, "labels", "labels CSV")
        frame = pd.read_csv(self.labels, skipinitialspace=True)
        for key in ("file_column", "label_column", "attribute_columns", "split_column"):
            wanted = getattr(self, key)
            for column in wanted if isinstance(wanted, list) else [wanted] if wanted else []:
                if column not in frame.columns:
                    raise ConfigError(f"{self.labels} has no column {column!r} (columns: {', '.join(map(str, frame.columns))})",
                                      key)
        frame = frame[frame[self.label_column].notna()].reset_index(drop=True)
        outside = [f for f in map(str, frame[self.file_column]) if PurePath(f).is_absolute() or ".." in PurePath(f).parts]
        if outside:
            raise ConfigError(f"{self.labels} lists {outside[0]!r}, outside root {self.root!r} (files are paths relative "
                              "to root, without '..')", "labels")
        files = [Path(self.root) / str(f) for f in frame[self.file_column]]
        missing = [f for f in files if not regular_file(f)]
        if missing:
            raise RuntimeError(f"{len(missing)} images listed in {self.labels} are not under {self.root!r}, e.g. {missing[0]}")
        targets, class_names = column_codes(frame[self.label_column])
        if class_names is None:
            check_num_classes(int(targets.max()) + 1, "labels", f"column {self.label_column!r} of {self.labels}")
        class_names = class_names or [str(i) for i in range(int(targets.max()) + 1)]
        attributes, values = {}, {}
        for column in self.attribute_columns:
            attributes[column], names = column_codes(frame[column])
            if names is not None:
                values[column] = names
        splits = {}
        if self.split_column is not None:
            which = frame[self.split_column].astype(str).str.strip().str.lower()
            splits = {name: torch.tensor((which == name).to_numpy()).nonzero().flatten() for name in ("train", "test")}
            if not all(len(index) for index in splits.values()):
                raise RuntimeError(f"column {self.split_column!r} of {self.labels} needs rows marked 'train' and rows marked 'test'")
        info = {"class_names": class_names, "attribute_values": values}
        return ImageFiles(files, transform), {"targets": targets, "attributes": attributes, "splits": splits, "info": info}
