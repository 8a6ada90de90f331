"""Records, tokenization through the chat template, truncation, packing and the resumable data order."""

from .encoding import PromptCompletion, RecordEncoder, TokenizedSequence
from .order import DataOrder
from .packing import TokenBatch, best_fit_decreasing, collate, pack
from .records import (
    ChatRecord,
    CompletionRecord,
    PreferenceRecord,
    PromptRecord,
    load_records,
    read_jsonl,
)
from .truncation import DataReport, Truncation

__all__ = [
    "ChatRecord",
    "CompletionRecord",
    "DataOrder",
    "DataReport",
    "PreferenceRecord",
    "PromptCompletion",
    "PromptRecord",
    "RecordEncoder",
    "TokenBatch",
    "TokenizedSequence",
    "Truncation",
    "best_fit_decreasing",
    "collate",
    "load_records",
    "pack",
    "read_jsonl",
]
