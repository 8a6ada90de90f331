"""Dataset versions: content-addressed manifests, verification and diffs."""

from .diff import DatasetDiff, RecordRef, diff_datasets
from .manifest import (
    DatasetWriter,
    ManifestMismatchError,
    Parent,
    hash_dataset,
    read_manifest,
    verify_dataset,
    write_manifest_for,
)

__all__ = [
    "DatasetDiff",
    "DatasetWriter",
    "ManifestMismatchError",
    "Parent",
    "RecordRef",
    "diff_datasets",
    "hash_dataset",
    "read_manifest",
    "verify_dataset",
    "write_manifest_for",
]
