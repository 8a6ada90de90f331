"""Recall@k of retrievers on a QA set: a question is answered at k if a relevant chunk is in the top k."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from rich.progress import Progress

from ..errors import ContextError
from .chunking import Chunk, CountTokens, chunk_document
from .hybrid import Retriever


@dataclasses.dataclass(frozen=True)
class QAItem:
    """A question whose answer is the passage of `source` that contains `answer` (whitespace and case folded)."""

    id: str
    question: str
    source: str
    answer: str


def _fold(text: str) -> str:
    return " ".join(text.split()).lower()


def load_docs_qa() -> list[QAItem]:
    """The built QA set over llmkit's own docs (docs/*.md), shipped with this package."""
    source = resources.files(__package__).joinpath("data/llmkit_docs_qa.jsonl")
    return [QAItem(**json.loads(line)) for line in source.read_text().splitlines() if line.strip()]


def load_corpus(directory: str | Path, count: CountTokens, size: int = 200, overlap: int = 40) -> list[Chunk]:
    """Every markdown file under `directory`, chunked markdown-aware; sources are file names."""
    directory = Path(directory)
    files = sorted(directory.glob("*.md"))
    if not files:
        raise ContextError(f"no markdown files in {directory}")
    return [c for f in files for c in chunk_document(f.read_text(), f.name, count, size, overlap)]


def relevant_chunks(item: QAItem, chunks: Sequence[Chunk]) -> set[int]:
    answer = _fold(item.answer)
    return {i for i, c in enumerate(chunks) if c.source == item.source and answer in _fold(c.text)}


@dataclasses.dataclass
class RecallReport:
    retriever: str
    recall: dict[int, float]  # k -> recall@k
    questions: int
    unanswerable: list[str]  # ids whose answer no chunk contains (split across chunks, or the doc changed)
    misses: dict[int, list[str]]  # k -> ids not answered in the top k


def recall_at_k(
    retriever: Retriever, items: Sequence[QAItem], ks: Sequence[int] = (1, 3, 5, 10), progress: bool = False
) -> RecallReport:
    """Recall@k for each k over the answerable items (those with at least one relevant chunk)."""
    answerable, unanswerable = [], []
    for item in items:
        relevant = relevant_chunks(item, retriever.chunks)
        (answerable if relevant else unanswerable).append((item, relevant))
    if not answerable:
        raise ContextError("no QA item has a relevant chunk in this corpus: wrong directory or chunking?")
    hits = {k: 0 for k in ks}
    misses: dict[int, list[str]] = {k: [] for k in ks}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"{retriever.name}", total=len(answerable))
        for item, relevant in answerable:
            ranked = [i for i, _ in retriever.search(item.question, max(ks))]
            for k in ks:
                if relevant & set(ranked[:k]):
                    hits[k] += 1
                else:
                    misses[k].append(item.id)
            bar.advance(task)
    return RecallReport(
        retriever.name,
        {k: hits[k] / len(answerable) for k in ks},
        len(answerable),
        [item.id for item, _ in unanswerable],
        misses,
    )
