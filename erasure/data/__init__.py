"""Datasets, data sources, forget specifications and partitions."""
from erasure.data.dataset import Dataset, DataSource, NodeBatch
from erasure.data.forget import ClassForget, FeatureForget, ForgetSpec, GroupForget, IndexForget, RandomForget
from erasure.data.partitions import Partitions, Split, make_partitions

__all__ = [
    "ClassForget", "DataSource", "Dataset", "FeatureForget", "ForgetSpec", "GroupForget", "IndexForget",
    "NodeBatch", "Partitions", "RandomForget", "Split", "make_partitions",
]
