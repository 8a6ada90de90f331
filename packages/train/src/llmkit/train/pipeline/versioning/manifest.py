"""Content-addressed dataset versions: a hash per record, a dataset hash, the config and code that made it.

Beside `data.jsonl` live `data.jsonl.hashes` (one record hash a line, in order) and
`data.jsonl.manifest.json`. The dataset hash is sha256 over the record hashes in order, so equal
records in equal order are the same version whatever their JSON formatting. All three files are
written atomically, data first: a crash leaves a manifest that no longer matches, which `verify` finds.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import importlib.metadata
import json
import platform
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ...errors import DataError
from ..records import iter_lines, parse_record, record_hash
from ..storage import atomic_writer, write_text_atomic

MANIFEST_FORMAT = "llmkit-dataset/1"


class ManifestMismatchError(DataError):
    """A dataset whose data no longer matches its manifest (edited, truncated, or a torn write)."""


def manifest_path(data: str | Path) -> Path:
    return Path(f"{data}.manifest.json")


def hashes_path(data: str | Path) -> Path:
    return Path(f"{data}.hashes")


class DatasetHasher:
    """Accumulates record hashes in order into the dataset hash."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.count = 0

    def add(self, record_hex: str) -> None:
        self._digest.update(bytes.fromhex(record_hex))
        self.count += 1

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, str | None]:
    """llmkit-train's version and, when it runs from a git checkout, the commit (with `+dirty` if edited)."""
    source = Path(__file__).resolve().parent
    commit = None
    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty=+dirty", "--abbrev=40"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=10,
        )
        commit = result.stdout.strip() or None if result.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        commit = None
    try:
        version = importlib.metadata.version("llmkit-train")
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"llmkit-train": version, "git": commit, "python": platform.python_version()}


@dataclasses.dataclass(frozen=True)
class Parent:
    """An input a dataset was made from, by content."""

    path: str
    dataset_hash: str
    records: int


class DatasetWriter:
    """Writes a JSONL dataset atomically with its record hashes and manifest (use as a context manager)."""

    def __init__(self, path: str | Path, stage: str, config: Mapping[str, Any], parents: Sequence[Parent] = ()) -> None:
        self.path = Path(path)
        self.stage, self.config, self.parents = stage, dict(config), list(parents)
        self.hasher = DatasetHasher()
        self._file_digest = hashlib.sha256()
        self._bytes = 0
        self._stack = ExitStack()

    def __enter__(self) -> DatasetWriter:
        self._data = self._stack.enter_context(atomic_writer(self.path))
        self._hashes = self._stack.enter_context(atomic_writer(hashes_path(self.path)))
        return self

    def write(self, line: str, record_hex: str) -> None:
        """Append one record: its JSON line as is (a newline is added when missing) and its hash."""
        if not line.endswith("\n"):
            line += "\n"
        encoded = line.encode("utf-8")
        self._file_digest.update(encoded)
        self._bytes += len(encoded)
        self._data.write(line)
        self._hashes.write(record_hex + "\n")
        self.hasher.add(record_hex)

    def write_record(self, record: Mapping[str, Any]) -> None:
        self.write(json.dumps(record, ensure_ascii=False), record_hash(record))

    def add_parent(self, parent: Parent) -> None:
        self.parents.append(parent)

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._stack.__exit__(exc_type, exc, traceback)
        if exc_type is None:
            write_text_atomic(manifest_path(self.path), json.dumps(self.manifest(), indent=2) + "\n")

    def manifest(self) -> dict[str, Any]:
        return build_manifest(
            self.path, self._file_digest.hexdigest(), self._bytes, self.hasher, self.stage, self.config, self.parents
        )


def build_manifest(
    data: Path,
    file_sha256: str,
    size: int,
    hasher: DatasetHasher,
    stage: str,
    config: Mapping[str, Any],
    parents: Sequence[Parent],
) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "data": data.name,
        "data_sha256": file_sha256,
        "data_bytes": size,
        "records": hasher.count,
        "dataset_hash": hasher.hexdigest(),
        "record_hashes": hashes_path(data).name,
        "pipeline": {"stage": stage, "config": dict(config)},
        "code": code_version(),
        "parents": [dataclasses.asdict(p) for p in parents],
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def read_manifest(data: str | Path) -> dict[str, Any]:
    path = manifest_path(data)
    if not path.is_file():
        raise ManifestMismatchError(f"{data} has no manifest ({path.name}); create one with `llmkit data manifest`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ManifestMismatchError(f"{path} is not valid JSON: {err.msg}") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ManifestMismatchError(f"{path} is not an {MANIFEST_FORMAT} manifest")
    return manifest


def hash_dataset(path: str | Path) -> Parent:
    """The dataset hash of a JSONL file, computed from its records (streamed)."""
    hasher = DatasetHasher()
    for number, line in iter_lines(path):
        hasher.add(record_hash(parse_record(line, f"{path}:{number}")))
    return Parent(str(path), hasher.hexdigest(), hasher.count)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_dataset(data: str | Path, full: bool = True) -> dict[str, Any]:
    """The manifest, after checking the data against it; `ManifestMismatchError` says what differs.

    The quick check compares the file's bytes; the full one also recomputes every record hash.
    """
    data = Path(data)
    manifest = read_manifest(data)
    if not data.is_file():
        raise ManifestMismatchError(f"{data} is missing but its manifest is present")
    actual = _file_sha256(data)
    if actual != manifest["data_sha256"]:
        raise ManifestMismatchError(
            f"{data} does not match its manifest: file sha256 {actual[:12]}… != {manifest['data_sha256'][:12]}… "
            "(edited after it was written, or a write did not finish)"
        )
    if full:
        computed = hash_dataset(data)
        if computed.records != manifest["records"] or computed.dataset_hash != manifest["dataset_hash"]:
            raise ManifestMismatchError(
                f"{data}: {computed.records} records hashing to {computed.dataset_hash[:12]}…, "
                f"manifest says {manifest['records']} records, {manifest['dataset_hash'][:12]}…"
            )
    return manifest


def write_manifest_for(
    data: str | Path, stage: str = "import", config: Mapping[str, Any] | None = None, parents: Iterable[Parent] = ()
) -> dict[str, Any]:
    """Version an existing JSONL file as it is: write its hashes sidecar and manifest (the data is untouched)."""
    data = Path(data)
    hasher = DatasetHasher()
    with atomic_writer(hashes_path(data)) as hashes:
        for number, line in iter_lines(data):
            record_hex = record_hash(parse_record(line, f"{data}:{number}"))
            hashes.write(record_hex + "\n")
            hasher.add(record_hex)
    manifest = build_manifest(data, _file_sha256(data), data.stat().st_size, hasher, stage, config or {}, list(parents))
    write_text_atomic(manifest_path(data), json.dumps(manifest, indent=2) + "\n")
    return manifest
