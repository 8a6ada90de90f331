"""Which replica has seen which prompt prefix: chained hashes of fixed-size text chunks per replica.

The router never tokenizes. A request's prompt text (its messages in order, or the completion prompt)
is cut into CHUNK_CHARS-character chunks and each chunk's hash chains the previous one, like the
engine's KV-block hashes, so two prompts share the first k hashes exactly when they share their first
k chunks. A replica that served a prompt holds its blocks in its prefix cache until it evicts them;
the index forgets in LRU order at a fixed capacity, an approximation of the replica's own eviction
(SGLang's router keeps a radix tree of request text per worker for the same purpose).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import orjson

CHUNK_CHARS = 64
MAX_CHUNKS = 512  # hash at most the first 32k characters: affinity is decided on the beginning


def chunk_hashes(text: str) -> list[bytes]:
    """Chained hashes of the text's whole chunks (a trailing partial chunk is not hashed)."""
    hashes, previous = [], b""
    whole = min(len(text) // CHUNK_CHARS, MAX_CHUNKS)
    for i in range(whole):
        chunk = text[i * CHUNK_CHARS : (i + 1) * CHUNK_CHARS].encode("utf-8", "surrogatepass")
        previous = hashlib.blake2b(previous + chunk, digest_size=12).digest()
        hashes.append(previous)
    return hashes


def prompt_text(payload: Any) -> str:
    """The part of a chat or completion request that becomes the prompt's prefix, in prompt order."""
    if not isinstance(payload, dict):
        return ""
    parts: list[str] = []
    if payload.get("tools"):
        parts.append(orjson.dumps(payload["tools"], option=orjson.OPT_SORT_KEYS).decode())
    messages = payload.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                content = message.get("content")
                if not isinstance(content, str):
                    content = orjson.dumps(content, option=orjson.OPT_SORT_KEYS).decode()
                parts.append(f"\x1e{message.get('role')}\x1f{content}")
        return "".join(parts)
    prompt = payload.get("prompt")
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        prompt = prompt[0]  # a batch: route by its first prompt
    if isinstance(prompt, list):
        return " ".join(str(token) for token in prompt)
    return "".join(parts) + (prompt if isinstance(prompt, str) else "")


class PrefixIndex:
    """The chunk hashes one replica has been sent, forgotten least recently used first."""

    def __init__(self, capacity: int = 200_000):
        self.capacity = capacity
        self._hashes: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hashes)

    def match(self, hashes: list[bytes]) -> int:
        """How many leading hashes this replica has (its likely prefix-cache hit, in chunks)."""
        matched = 0
        for h in hashes:
            if h not in self._hashes:
                break
            matched += 1
        return matched

    def insert(self, hashes: list[bytes]) -> None:
        for h in hashes:
            self._hashes[h] = None
            self._hashes.move_to_end(h)
        while len(self._hashes) > self.capacity:
            self._hashes.popitem(last=False)

    def clear(self) -> None:
        self._hashes.clear()
