"""Semantic dedup of code snippets (fenced code in messages): when a snippet is repeated (same definition or
near-identical), only the newest survives. ("Block" is kept for KV blocks; the pointer the model reads says
"code block", the Markdown term it knows.)"""

from __future__ import annotations

import dataclasses
import re

from .base import HistoryView

CODE_FENCE = re.compile(r"```[^\n]*\n.*?```", re.DOTALL)
_DEFINITION = re.compile(r"^\s*(?:def|class|function|fn|func|struct|interface)\s+([A-Za-z_][\w]*)", re.MULTILINE)
_FILE_LABEL = re.compile(r"^```[^\n]*?([\w./-]+\.\w+)", re.MULTILINE)


def snippet_key(snippet: str) -> str | None:
    """What a snippet defines: its file label (```python app.py) or its first definition's name."""
    label = _FILE_LABEL.match(snippet)
    if label:
        return "file:" + label.group(1)
    definition = _DEFINITION.search(snippet)
    return "def:" + definition.group(1) if definition else None


def _shingles(text: str, size: int = 3) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+|[^\w\s]", text)
    return {tuple(words[i : i + size]) for i in range(max(len(words) - size + 1, 1))}


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of word 3-shingles (1.0 for identical snippets)."""
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


@dataclasses.dataclass
class CodeDedup:
    """Older copies of a code snippet (same key, or similarity >= `threshold`) become a pointer to the newest."""

    threshold: float = 0.8
    name: str = "code_dedup"

    def apply(self, view: HistoryView) -> None:
        snippets = []  # (item, snippet text), oldest first
        for item in view.items:
            text = view.text(item)
            if text:
                snippets += [(item, m.group(0)) for m in CODE_FENCE.finditer(text)]
        superseded: dict[str, list[tuple[str, str]]] = {}
        for index, (item, snippet) in enumerate(snippets):
            key = snippet_key(snippet)
            for newer_item, newer in snippets[index + 1 :]:
                if newer_item is item:
                    continue
                same = key is not None and key == snippet_key(newer)
                if same or similarity(snippet, newer) >= self.threshold:
                    why = f"same {key.split(':', 1)[0]} {key.split(':', 1)[1]}" if same else "near-identical code"
                    pointer = f"[code block superseded by the newer version in turn {newer_item.turn}]"
                    superseded.setdefault(item.item_id, []).append((snippet, pointer + f" ({why})"))
                    break
        for item in view.items:
            replacements = superseded.get(item.item_id)
            text = view.text(item)
            if not replacements or text is None:
                continue
            for snippet, pointer in replacements:
                text = text.replace(snippet, pointer, 1)
            reasons = "; ".join(p for _, p in replacements)
            view.decide(item, self.name, "dedup", reasons, text)
