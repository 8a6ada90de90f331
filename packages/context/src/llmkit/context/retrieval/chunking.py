"""Chunking: token windows with overlap, over pieces that respect markdown sections and code definitions."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable

from ..errors import ContextError

CountTokens = Callable[[str], int]
_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_TOP_LEVEL_CODE = re.compile(r"^(?:@|def |async def |class |function |fn |func |pub |export |struct |impl )")
CODE_SUFFIXES = (".py", ".js", ".ts", ".go", ".rs", ".c", ".cc", ".cpp", ".h", ".hpp", ".cu", ".java", ".rb")


@dataclasses.dataclass(frozen=True)
class Chunk:
    """A passage of a source document; `heading` is its markdown section path (or code unit) for labels."""

    text: str
    source: str
    index: int
    heading: str = ""

    @property
    def label(self) -> str:
        return f"{self.source} > {self.heading}" if self.heading else self.source


def _split_long(piece: str, count: CountTokens, size: int) -> list[str]:
    """Split a piece longer than `size` tokens at line, then word boundaries."""
    if count(piece) <= size:
        return [piece]
    separator = "\n" if "\n" in piece.strip() else " "
    parts, current = [], ""
    for word in piece.split(separator):
        candidate = f"{current}{separator}{word}" if current else word
        if current and count(candidate) > size:
            parts.append(current)
            current = word
        else:
            current = candidate
    parts.append(current)
    if separator == " ":
        return [p for part in parts for p in _split_chars(part, count, size)]
    return [p for part in parts for p in _split_long(part, count, size)]


def _split_chars(text: str, count: CountTokens, size: int) -> list[str]:
    """Last resort for one enormous word: halve it until each half fits."""
    if count(text) <= size or len(text) <= 1:
        return [text]
    middle = len(text) // 2
    return _split_chars(text[:middle], count, size) + _split_chars(text[middle:], count, size)


def window_pieces(pieces: Iterable[str], count: CountTokens, size: int, overlap: int) -> list[str]:
    """Join consecutive pieces into windows of at most `size` tokens; each window repeats about
    `overlap` tokens of whole pieces from the end of the previous one."""
    if size <= 0 or not 0 <= overlap < size:
        raise ContextError(f"chunk size must be positive and overlap in [0, size), got size={size}, overlap={overlap}")
    flat = [p for piece in pieces if piece.strip() for p in _split_long(piece, count, size)]
    windows: list[str] = []
    current: list[str] = []
    for piece in flat:
        if current and count("\n".join([*current, piece])) > size:
            windows.append("\n".join(current))
            carried: list[str] = []
            for previous in reversed(current):
                if count("\n".join([previous, *carried, piece])) > size or count("\n".join(carried)) >= overlap:
                    break
                carried.insert(0, previous)
            current = carried
        current.append(piece)
    if current:
        windows.append("\n".join(current))
    return windows


def _paragraphs(lines: list[str]) -> list[str]:
    """Blank-line separated paragraphs; a code fence stays one piece."""
    pieces, current, in_fence = [], [], False
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
        if not line.strip() and not in_fence:
            if current:
                pieces.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if current:
        pieces.append("\n".join(current))
    return pieces


def chunk_markdown(text: str, source: str, count: CountTokens, size: int = 200, overlap: int = 40) -> list[Chunk]:
    """Split at headings (never inside a code fence), then token windows within each section."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    path: list[str] = []
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            path = [*path[: level - 1], heading.group(2)]
            sections.append((" > ".join(path), [line]))
        else:
            sections[-1][1].append(line)
    chunks: list[Chunk] = []
    for heading, lines in sections:
        for window in window_pieces(_paragraphs(lines), count, size, overlap):
            chunks.append(Chunk(window, source, len(chunks), heading))
    return chunks


def chunk_code(text: str, source: str, count: CountTokens, size: int = 200, overlap: int = 40) -> list[Chunk]:
    """Split at top-level definitions (def, class, decorators, fn ...), then token windows."""
    units: list[list[str]] = [[]]
    for line in text.splitlines():
        if _TOP_LEVEL_CODE.match(line) and units[-1] and not units[-1][-1].startswith("@"):
            units.append([])
        units[-1].append(line)
    chunks: list[Chunk] = []
    for unit in units:
        body = "\n".join(unit).strip("\n")
        if not body.strip():
            continue
        first = next((line for line in unit if line.strip() and not line.startswith("@")), "")
        for window in window_pieces([body], count, size, overlap):
            chunks.append(Chunk(window, source, len(chunks), first.strip().rstrip(":")[:80]))
    return chunks


def chunk_text(text: str, source: str, count: CountTokens, size: int = 200, overlap: int = 40) -> list[Chunk]:
    """Plain token windows over paragraphs."""
    windows = window_pieces(_paragraphs(text.splitlines()), count, size, overlap)
    return [Chunk(w, source, i) for i, w in enumerate(windows)]


def chunk_document(text: str, source: str, count: CountTokens, size: int = 200, overlap: int = 40) -> list[Chunk]:
    """Markdown-aware for .md, code-aware for source files, plain windows otherwise."""
    if source.endswith((".md", ".markdown")):
        return chunk_markdown(text, source, count, size, overlap)
    if source.endswith(CODE_SUFFIXES):
        return chunk_code(text, source, count, size, overlap)
    return chunk_text(text, source, count, size, overlap)
