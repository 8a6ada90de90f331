"""`BlockManager`: maps sequences onto fixed-size KV blocks, shares full blocks by chained hash.

A block is free when no sequence holds it (ref count 0). Free blocks sit in one LRU queue;
those that still carry a hash are the prefix cache and are reused only when a sequence's
chained block hash matches. Taking a block off the queue for new tokens evicts its hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
from array import array
from collections import OrderedDict

from .sequence import Sequence


@dataclasses.dataclass
class KVBlock:
    block_id: int
    ref_count: int = 0
    hash: bytes | None = None


def chain_hash(parent: bytes, token_ids: list[int], extra_key: bytes = b"") -> bytes:
    """sha256 over the parent block's hash, this block's token ids and extra keys (e.g. adapter id)."""
    digest = hashlib.sha256(parent)
    digest.update(array("q", token_ids).tobytes())
    digest.update(extra_key)
    return digest.digest()


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"need at least one block of at least one token, got {num_blocks} x {block_size}")
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.blocks = [KVBlock(i) for i in range(num_blocks)]
        self.free_queue: OrderedDict[int, None] = OrderedDict((i, None) for i in range(num_blocks))
        self.cached_blocks: dict[bytes, int] = {}
        self.queried_blocks = 0  # prefix-cache statistics, over admissions
        self.hit_blocks = 0

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_free_blocks(self) -> int:
        return len(self.free_queue)

    @property
    def usage(self) -> float:
        return 1 - self.num_free_blocks / self.num_blocks

    def update_hashes(self, seq: Sequence) -> None:
        """Extend `seq.block_hashes` over every full block of its known tokens (a block over image tokens is
        keyed by those images' content hashes too)."""
        tokens = seq.token_ids()
        size = self.block_size
        while (len(seq.block_hashes) + 1) * size <= len(tokens):
            i = len(seq.block_hashes)
            parent = seq.block_hashes[-1] if seq.block_hashes else b""
            extra = seq.extra_hash_key
            if seq.images is not None:
                extra += seq.images.block_key(i * size, (i + 1) * size)
            seq.block_hashes.append(chain_hash(parent, tokens[i * size : (i + 1) * size], extra))

    def cached_prefix_blocks(self, seq: Sequence) -> list[int]:
        """Blocks already holding a prefix of `seq`; the last token of `seq` is always left to compute."""
        if not (self.enable_prefix_caching and seq.shares_prefix):
            return []
        self.update_hashes(seq)
        usable = (seq.num_tokens - 1) // self.block_size
        hits = []
        for block_hash in seq.block_hashes[:usable]:
            block_id = self.cached_blocks.get(block_hash)
            if block_id is None:
                break
            hits.append(block_id)
        return hits

    def blocks_needed(self, seq: Sequence, num_new_tokens: int) -> int:
        """New blocks `seq` needs to hold `num_new_tokens` more computed tokens."""
        total = -(-(seq.num_computed_tokens + num_new_tokens) // self.block_size)
        return max(0, total - len(seq.block_table))

    def admit(self, seq: Sequence, num_new_tokens: int) -> bool:
        """First allocation of a waiting sequence: reuse its cached prefix, then allocate the rest.
        `num_new_tokens` counts tokens beyond the cached prefix. False (and nothing changed) if it does not fit."""
        assert not seq.block_table and seq.num_computed_tokens == 0
        hits = self.cached_prefix_blocks(seq)
        revived = sum(1 for b in hits if self.blocks[b].ref_count == 0)  # they leave the free queue too
        needed = -(-(len(hits) * self.block_size + num_new_tokens) // self.block_size) - len(hits)
        if needed + revived > self.num_free_blocks:
            return False
        for block_id in hits:
            self._hold(block_id)
        seq.block_table = list(hits)
        seq.num_computed_tokens = seq.num_cached_tokens = len(hits) * self.block_size
        self.queried_blocks += (seq.num_tokens - 1) // self.block_size if self.enable_prefix_caching else 0
        self.hit_blocks += len(hits)
        self._grow(seq, needed)
        return True

    def allocate_for(self, seq: Sequence, num_new_tokens: int) -> bool:
        """Make room for `num_new_tokens` more tokens of a running sequence; False if blocks ran out."""
        needed = self.blocks_needed(seq, num_new_tokens)
        if needed > self.num_free_blocks:
            return False
        self._grow(seq, needed)
        return True

    def commit(self, seq: Sequence) -> None:
        """Publish the hashes of `seq`'s computed full blocks so later sequences can share them."""
        if not self.enable_prefix_caching:
            return
        self.update_hashes(seq)
        full = seq.num_computed_tokens // self.block_size
        for i in range(full):
            block = self.blocks[seq.block_table[i]]
            if block.hash is None:
                block_hash = seq.block_hashes[i]
                if block_hash not in self.cached_blocks:  # another sequence may have computed it first
                    block.hash = block_hash
                    self.cached_blocks[block_hash] = block.block_id

    def free(self, seq: Sequence) -> None:
        """Release every block `seq` holds. Tail blocks go first so shared prefixes live longest;
        blocks without a hash cannot be reused, so they are handed out again before cached ones."""
        for block_id in reversed(seq.block_table):
            block = self.blocks[block_id]
            block.ref_count -= 1
            assert block.ref_count >= 0, f"block {block_id} freed more often than held"
            if block.ref_count == 0:
                self.free_queue[block_id] = None
                if block.hash is None:
                    self.free_queue.move_to_end(block_id, last=False)
        seq.block_table = []
        seq.num_computed_tokens = 0

    def trim(self, seq: Sequence, num_tokens: int) -> None:
        """Release the tail blocks `seq` holds beyond what `num_tokens` tokens need (rejected drafts)."""
        keep = -(-num_tokens // self.block_size)
        while len(seq.block_table) > keep:
            block = self.blocks[seq.block_table.pop()]
            block.ref_count -= 1
            if block.ref_count == 0:
                if block.hash is not None:
                    del self.cached_blocks[block.hash]
                    block.hash = None
                self.free_queue[block.block_id] = None
                self.free_queue.move_to_end(block.block_id, last=False)

    def reset_prefix_cache(self) -> None:
        """Forget every cached block (the weights changed, so cached K/V are stale)."""
        for block in self.blocks:
            block.hash = None
        self.cached_blocks.clear()

    def _hold(self, block_id: int) -> None:
        block = self.blocks[block_id]
        if block.ref_count == 0:
            del self.free_queue[block_id]
        block.ref_count += 1

    def _grow(self, seq: Sequence, count: int) -> None:
        for _ in range(count):
            block_id, _ = self.free_queue.popitem(last=False)
            block = self.blocks[block_id]
            if block.hash is not None:  # evict: the block's old content is about to be overwritten
                del self.cached_blocks[block.hash]
                block.hash = None
            block.ref_count = 1
            seq.block_table.append(block_id)
