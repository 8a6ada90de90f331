"""`ReferenceMatcher`: the pure-Python grammar matcher, the specification the native one is tested against."""

from __future__ import annotations

import numpy as np
import torch

from .budget import BUDGET_WINDOW, finish_costs, single_byte_tokens
from .compiled import CompiledGrammar
from .earley import EarleyChart
from .token_masks import MaskEntry, classify
from .vocabulary import VocabularyIndex

MAX_FORCED_BYTES = 256


def words_for(vocab_size: int) -> int:
    return (vocab_size + 31) // 32


def pack_mask(allowed: np.ndarray) -> np.ndarray:
    """bool [V] -> int32 [ceil(V/32)] with bit j of word w = token 32w + j."""
    padded = np.zeros(words_for(len(allowed)) * 32, dtype=bool)
    padded[: len(allowed)] = allowed
    return np.packbits(padded, bitorder="little").view("<i4").astype(np.int32)


class ReferenceMatcher:
    """Byte-level Earley matching of one generation against a compiled grammar, token by token."""

    def __init__(self, grammar: CompiledGrammar, vocabulary: VocabularyIndex, stop_token_ids=None):
        self.grammar, self.vocabulary = grammar, vocabulary
        self.stop_token_ids = tuple(vocabulary.stop_token_ids if stop_token_ids is None else stop_token_ids)
        self.chart = EarleyChart(grammar)
        self.history: list[int | None] = []  # bytes per accepted token; None for a stop token
        self.terminated = False
        key = ("reference", id(vocabulary))
        if key not in grammar.backend_state:
            costs = finish_costs(grammar, single_byte_tokens(vocabulary.token_bytes))
            grammar.backend_state[key] = ({}, costs)
        self._cache: dict[int, MaskEntry] = grammar.backend_state[key][0]
        self._finish_costs = grammar.backend_state[key][1]

    @property
    def num_accepted_tokens(self) -> int:
        return len(self.history)

    def accept_token(self, token_id: int) -> bool:
        """Advance over a token; False (and no change) if the grammar does not allow it here."""
        if self.terminated or not 0 <= token_id < self.vocabulary.vocab_size:
            return False
        if token_id in self.stop_token_ids:
            if not self.chart.can_finish():
                return False
            self.terminated = True
            self.history.append(None)
            return True
        data = self.vocabulary.token_bytes[token_id]
        if not data or not self.chart.accepts_bytes(data):
            return False
        self.history.append(len(data))
        return True

    def accept_bytes(self, data: bytes) -> bool:
        """Advance over raw bytes as one history entry (used for forced text); False if not allowed."""
        if self.terminated or not data or not self.chart.accepts_bytes(data):
            return False
        self.history.append(len(data))
        return True

    def rollback(self, count: int) -> None:
        if count < 0 or count > len(self.history):
            raise ValueError(f"cannot roll back {count} tokens: {len(self.history)} were accepted")
        for _ in range(count):
            size = self.history.pop()
            if size is None:
                self.terminated = False
            else:
                self.chart.pop(size)

    def reset(self) -> None:
        self.rollback(len(self.history))

    def is_terminated(self) -> bool:
        return self.terminated

    def can_terminate(self) -> bool:
        return not self.terminated and self.chart.can_finish()

    def allowed_tokens(self) -> np.ndarray:
        """bool [vocab]: the tokens `accept_token` would take now."""
        allowed = np.zeros(self.vocabulary.vocab_size, dtype=bool)
        if self.terminated:
            return allowed
        candidates: set[int] = set()
        for state in self.chart.root_states():
            entry = self._cache.get(state)
            if entry is None:
                entry = self._cache[state] = classify(self.grammar, self.vocabulary, state)
            allowed |= entry.accepted
            candidates.update(entry.uncertain.tolist())
        for token_id in sorted(candidates):
            if not allowed[token_id]:
                data = self.vocabulary.token_bytes[token_id]
                if self.chart.accepts_bytes(data):
                    self.chart.pop(len(data))
                    allowed[token_id] = True
        if self.chart.can_finish():
            allowed[list(self.stop_token_ids)] = True
        return allowed

    def fill_next_token_bitmask(self, bitmask: torch.Tensor, row: int = 0) -> None:
        """Write the allowed tokens into row `row` of an int32 [batch, ceil(vocab/32)] bitmask."""
        words = pack_mask(self.allowed_tokens())
        if bitmask.dtype != torch.int32 or bitmask.dim() != 2 or bitmask.shape[1] < len(words):
            raise ValueError(
                f"bitmask must be int32 [batch, >= {len(words)}], got {bitmask.dtype} {tuple(bitmask.shape)}"
            )
        bitmask[row].zero_()
        bitmask[row, : len(words)] = torch.from_numpy(words)

    def finish_cost(self) -> int:
        """The fewest bytes (each a one-byte token) that complete the grammar from here."""
        return 0 if self.terminated else self.chart.finish_cost(self._finish_costs)

    def restrict_to_budget(self, bitmask: torch.Tensor, row: int, tokens_left: int) -> None:
        """Clear the tokens of a filled mask row after which the grammar could not finish, stop token
        included, within `tokens_left` tokens (this one counted); nothing to do far from the end. When no
        token can finish in time the row is left as the grammar filled it, never emptied."""
        if self.terminated or self.finish_cost() + BUDGET_WINDOW < tokens_left:
            return
        bits = np.unpackbits(bitmask[row].numpy().view(np.uint8), bitorder="little").astype(bool)
        for token_id in np.flatnonzero(bits[: self.vocabulary.vocab_size]).tolist():
            if token_id in self.stop_token_ids:
                continue
            data = self.vocabulary.token_bytes[token_id]
            self.chart.accepts_bytes(data)
            cost = self.chart.finish_cost(self._finish_costs)
            self.chart.pop(len(data))
            if cost + 1 > tokens_left - 1:
                bits[token_id] = False
        if not bits.any():
            return  # nothing finishes in time (max_tokens below the shortest completion): the length limit cuts it
        bitmask[row] = torch.from_numpy(np.packbits(bits, bitorder="little").view("<i4").astype(np.int32))

    def find_forced_bytes(self) -> bytes:
        """The bytes every continuation starts with (empty when there is a choice or the grammar may end)."""
        forced = bytearray()
        while len(forced) < MAX_FORCED_BYTES and not self.terminated and not self.chart.can_finish():
            options = self.chart.next_bytes()
            if len(options) != 1:
                break
            byte = options.pop()
            self.chart.scan(byte)
            forced.append(byte)
        self.chart.pop(len(forced))
        return bytes(forced)
