"""The `files` toolbox: read and list files under one root directory; paths that leave it are refused."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ToolError
from .tool import tool
from .toolbox import Toolbox


def confine(root: Path, path: str) -> Path:
    """`path` resolved (symbolic links followed) if it stays inside `root`, else ToolError."""
    if "\x00" in path:
        raise ToolError("refused: the path contains a NUL byte")
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if resolved != root and root not in resolved.parents:
        raise ToolError(f"refused: {path!r} is outside the readable root")
    return resolved


class FilesToolbox(Toolbox):
    """Read-only access to the files under `root` (default: the current directory)."""

    def __init__(self, root: str = ".", max_bytes: int = 20000, max_entries: int = 200):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ToolError(f"the files root {root!r} is not a directory")
        self.max_bytes, self.max_entries = max_bytes, max_entries

    @tool
    def read_file(self, path: str) -> str:
        """Read a text file (paths are relative to the root directory).

        Args:
            path: the file's path relative to the root, e.g. "docs/notes.txt".
        """
        target = confine(self.root, path)
        if not target.is_file():
            raise ToolError(f"no file {path!r} under the root")
        with target.open("rb") as f:
            data = f.read(self.max_bytes + 1)
        text = data[: self.max_bytes].decode("utf-8", errors="replace")
        if len(data) > self.max_bytes:
            text += f"\n[... cut at {self.max_bytes} bytes of {target.stat().st_size}]"
        return text

    @tool
    def list_files(self, directory: str = ".") -> str:
        """List the files and directories in a directory under the root.

        Args:
            directory: a directory relative to the root; "." is the root itself.
        """
        target = confine(self.root, directory)
        if not target.is_dir():
            raise ToolError(f"no directory {directory!r} under the root")
        names = sorted(os.listdir(target))
        shown = [f"{n}/" if (target / n).is_dir() else n for n in names[: self.max_entries]]
        if len(names) > self.max_entries:
            shown.append(f"[... {len(names) - self.max_entries} more]")
        return "\n".join(shown) or "(empty directory)"
