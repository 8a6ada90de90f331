"""The `files` toolbox: read and list files under one root directory, never through a symbolic link.

Every path is walked from a descriptor of the root one component at a time (`openat` with
O_NOFOLLOW), so a symbolic link swapped in after any check, as the file or as a directory on the
way, is refused instead of followed: there is no window between checking a path and opening it.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from pathlib import Path

from ..errors import ToolError
from .tool import tool
from .toolbox import Toolbox

_NO_FOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a FIFO cannot hang a read
_DIRECTORY = _NO_FOLLOW | os.O_DIRECTORY


def relative_parts(root: Path, path: str) -> list[str]:
    """The components of `path` below `root`, normalized lexically (no link is ever followed, so '..'
    means the parent); ToolError when it leaves the root."""
    if "\x00" in path:
        raise ToolError("refused: the path contains a NUL byte")
    if posixpath.isabs(path):
        root_text = str(root)
        if path != root_text and not path.startswith(root_text.rstrip("/") + "/"):
            raise ToolError(f"refused: {path!r} is outside the readable root")
        path = path[len(root_text) :]
    normal = posixpath.normpath(path.lstrip("/") or ".")
    if normal == ".." or normal.startswith("../"):
        raise ToolError(f"refused: {path!r} is outside the readable root")
    return [] if normal == "." else normal.split("/")


def open_beneath(root_fd: int, parts: list[str], path: str, directory: bool) -> int:
    """A descriptor of root/parts, opened one component at a time without following any link."""
    current = os.dup(root_fd)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            flags = _DIRECTORY if not last or directory else _NO_FOLLOW
            try:
                following = os.open(part, flags, dir_fd=current)
            except OSError as err:
                where = "/".join(parts[: index + 1])
                if err.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(part, current):
                    raise ToolError(f"refused: {where!r} is a symbolic link (links are not followed)") from None
                raise _refusal(err, path, directory) from None
            os.close(current)
            current = following
        return current
    except BaseException:
        os.close(current)
        raise


def _is_link(name: str, dir_fd: int) -> bool:
    """Whether `name` in `dir_fd` is a symbolic link (O_DIRECTORY|O_NOFOLLOW reports one as ENOTDIR)."""
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _refusal(err: OSError, path: str, want_directory: bool) -> ToolError:
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        return ToolError(f"no {'directory' if want_directory else 'file'} {path!r} under the root")
    if err.errno == errno.EACCES:
        return ToolError(f"refused: permission denied for {path!r}")
    return ToolError(f"cannot open {path!r}: {os.strerror(err.errno or 0)}")


class FilesToolbox(Toolbox):
    """Read-only access to the files under `root` (default: the current directory); no symbolic links."""

    def __init__(self, root: str = ".", max_bytes: int = 20000, max_entries: int = 200):
        self.root = Path(root).resolve()
        try:
            self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            raise ToolError(f"the files root {root!r} is not a directory") from None
        self.max_bytes, self.max_entries = max_bytes, max_entries

    def _open(self, path: str, directory: bool) -> int:
        if self._root_fd < 0:
            raise ToolError("the files toolbox is closed")
        return open_beneath(self._root_fd, relative_parts(self.root, path), path, directory)

    @tool
    def read_file(self, path: str) -> str:
        """Read a text file (paths are relative to the root directory).

        Args:
            path: the file's path relative to the root, e.g. "docs/notes.txt".
        """
        fd = self._open(path, directory=False)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ToolError(f"no file {path!r} under the root (it is not a regular file)")
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(self.max_bytes + 1)
        finally:
            os.close(fd)
        text = data[: self.max_bytes].decode("utf-8", errors="replace")
        if len(data) > self.max_bytes:
            text += f"\n[... cut at {self.max_bytes} bytes of {info.st_size}]"
        return text

    @tool
    def list_files(self, directory: str = ".") -> str:
        """List the files and directories in a directory under the root.

        Args:
            directory: a directory relative to the root; "." is the root itself.
        """
        fd = self._open(directory, directory=True)
        try:
            with os.scandir(fd) as entries:
                found = sorted((entry.name, _kind(entry)) for entry in entries)
        finally:
            os.close(fd)
        shown = [name + suffix for name, suffix in found[: self.max_entries]]
        if len(found) > self.max_entries:
            shown.append(f"[... {len(found) - self.max_entries} more]")
        return "\n".join(shown) or "(empty directory)"

    def close(self) -> None:
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1


def _kind(entry: os.DirEntry) -> str:
    if entry.is_symlink():
        return " (symbolic link, not followed)"
    return "/" if entry.is_dir(follow_symlinks=False) else ""
