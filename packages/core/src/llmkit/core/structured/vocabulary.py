"""`VocabularyIndex`: every token's byte string and a trie over them, built once per tokenizer.

Byte-level BPE tokens are mapped back through the GPT-2 bytes<->unicode table; SentencePiece
pieces through '▁' and <0xNN>. Special (control) tokens are never grammar text: they are left
out of the trie, and only the stop tokens are ever allowed, when the grammar can end.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np

from ..tokenizer import Tokenizer


def gpt2_byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes_to_unicode: printable stand-in character -> byte."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


@dataclasses.dataclass(eq=False)
class VocabularyIndex:
    """Token byte strings (None for special tokens and ids past the tokenizer) and the trie in preorder."""

    token_bytes: list[bytes | None]
    stop_token_ids: tuple[int, ...]
    node_parent: np.ndarray  # int32 [nodes]; node 0 is the root (empty prefix)
    node_byte: np.ndarray  # int32 [nodes]
    node_depth: np.ndarray  # int32 [nodes]
    subtree_end: np.ndarray  # int32 [nodes]: first preorder index after the node's subtree
    token_node: np.ndarray  # int32 [vocab]: node where the token ends, -1 if never grammar text
    backend_state: dict[Any, Any] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def vocab_size(self) -> int:
        return len(self.token_bytes)

    @property
    def max_token_length(self) -> int:
        return int(self.node_depth.max()) if len(self.node_depth) else 0

    @classmethod
    def from_token_bytes(cls, token_bytes: list[bytes | None], stop_token_ids: tuple[int, ...]) -> VocabularyIndex:
        ends: dict[bytes, list[int]] = {}
        for token_id, data in enumerate(token_bytes):
            if data:
                ends.setdefault(data, []).append(token_id)
        parent, byte, depth = [-1], [-1], [0]
        token_node = np.full(len(token_bytes), -1, dtype=np.int32)
        path: list[int] = [0]
        previous = b""
        for data in sorted(ends):
            common = 0
            limit = min(len(previous), len(data))
            while common < limit and previous[common] == data[common]:
                common += 1
            del path[common + 1 :]
            for k in range(common, len(data)):
                parent.append(path[-1])
                byte.append(data[k])
                depth.append(k + 1)
                path.append(len(parent) - 1)
            for token_id in ends[data]:
                token_node[token_id] = path[-1]
            previous = data
        depth_arr = np.array(depth, dtype=np.int32)
        subtree_end = np.full(len(depth), len(depth), dtype=np.int32)
        open_nodes: list[int] = []
        for node, d in enumerate(depth):
            while open_nodes and depth[open_nodes[-1]] >= d:
                subtree_end[open_nodes.pop()] = node
            open_nodes.append(node)
        return cls(
            list(token_bytes),
            tuple(stop_token_ids),
            np.array(parent, dtype=np.int32),
            np.array(byte, dtype=np.int32),
            depth_arr,
            subtree_end,
            token_node,
        )


def token_bytes_of(tokenizer: Tokenizer, vocab_size: int | None = None) -> list[bytes | None]:
    backend = tokenizer.backend
    size = max(vocab_size or 0, tokenizer.vocab_size)
    added = backend.get_added_tokens_decoder()
    decoder = type(backend.decoder).__name__ if backend.decoder is not None else ""
    byte_map = gpt2_byte_decoder()
    out: list[bytes | None] = []
    for token_id in range(size):
        piece = backend.id_to_token(token_id) if token_id < tokenizer.vocab_size else None
        if piece is None or (token_id in added and added[token_id].special):
            out.append(None)
        elif token_id in added:
            out.append(added[token_id].content.encode())
        elif decoder == "ByteLevel" or all(ch in byte_map for ch in piece):
            out.append(bytes(byte_map[ch] for ch in piece) if all(ch in byte_map for ch in piece) else None)
        elif piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
            out.append(bytes([int(piece[3:5], 16)]))
        else:
            out.append(piece.replace("▁", " ").encode())
    return out


_indexes: dict[tuple[int, int], tuple[Tokenizer, VocabularyIndex]] = {}
_lock = threading.Lock()


def vocabulary_index(tokenizer: Tokenizer, vocab_size: int | None = None) -> VocabularyIndex:
    """The tokenizer's index, built on first use (vocab_size: the model's logits width, if larger)."""
    key = (id(tokenizer), vocab_size or 0)
    with _lock:
        hit = _indexes.get(key)
        if hit is not None and hit[0] is tokenizer:
            return hit[1]
    index = VocabularyIndex.from_token_bytes(token_bytes_of(tokenizer, vocab_size), tokenizer.eos_token_ids)
    with _lock:
        _indexes[key] = (tokenizer, index)
    return index
