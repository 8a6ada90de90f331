"""Datasets: samples plus where they came from (package, version, sha256), read offline."""

from .dataset import Dataset, Sample
from .files import load_csv, load_hub, load_jsonl, read_records
from .packaged import PackagedFile, fetch_package_archive, read_package_member

__all__ = [
    "Dataset",
    "PackagedFile",
    "Sample",
    "fetch_package_archive",
    "load_csv",
    "load_hub",
    "load_jsonl",
    "read_package_member",
    "read_records",
]
