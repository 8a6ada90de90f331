"""`Sequence`: one generation stream, and the states it moves through in the engine."""

from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING

from llmkit.core.sampling import SamplingParams
from llmkit.core.stopping import OutputStream
from llmkit.core.tokenizer import Tokenizer

if TYPE_CHECKING:
    from .vision import ImagePrompt


class SequenceStatus(enum.Enum):
    """Where a sequence is. Only the scheduler moves a sequence from one status to another (see
    docs/architecture.md for the machine)."""

    WAITING = "waiting"  # queued for admission: new, or preempted / undone and waiting to be recomputed
    WAITING_FOR_GRAMMAR = "waiting_for_grammar"  # its request's grammar is compiling on a background thread
    WAITING_FOR_REMOTE_KV = "waiting_for_remote_kv"  # blocks reserved; its prompt's K/V come from a prefill worker
    RUNNING = "running"
    FINISHED_STOPPED = "finished_stopped"  # a stop token or string, or a grammar that cannot go on
    FINISHED_LENGTH = "finished_length"
    FINISHED_ABORTED = "finished_aborted"
    FINISHED_ERROR = "finished_error"  # its grammar failed to compile, or a step failed on it

    @property
    def is_finished(self) -> bool:
        return self in _FINISHED

    @staticmethod
    def finished(reason: str | None) -> SequenceStatus:
        """The final status for an `OutputStream.finish_reason` (None: ended without one, an abort)."""
        return {
            "stop": SequenceStatus.FINISHED_STOPPED,
            "length": SequenceStatus.FINISHED_LENGTH,
            "error": SequenceStatus.FINISHED_ERROR,
        }.get(reason, SequenceStatus.FINISHED_ABORTED)


_FINISHED = frozenset(
    {
        SequenceStatus.FINISHED_STOPPED,
        SequenceStatus.FINISHED_LENGTH,
        SequenceStatus.FINISHED_ABORTED,
        SequenceStatus.FINISHED_ERROR,
    }
)


class SpeculationStats:
    """Drafts proposed to and accepted by one sequence (for adaptive speculation and metrics)."""

    def __init__(self) -> None:
        self.proposals = 0
        self.proposed = 0
        self.accepted = 0
        self.enabled = True

    @property
    def mean_accepted(self) -> float:
        return self.accepted / self.proposals if self.proposals else 0.0


class Sequence:
    """Token ids (prompt then output), how many of them are in the KV cache, and the blocks holding them."""

    def __init__(
        self,
        seq_id: int,
        request_id: str,
        index: int,
        prompt_token_ids: list[int],
        params: SamplingParams,
        seed: int,
        tokenizer: Tokenizer,
        max_new_tokens: int,
        extra_hash_key: bytes = b"",
        images: ImagePrompt | None = None,
    ):
        self.seq_id, self.request_id, self.index = seq_id, request_id, index
        self.prompt_token_ids = prompt_token_ids
        self.params, self.seed = params, seed
        self.output = OutputStream(tokenizer, params, max_new_tokens)
        self.extra_hash_key = extra_hash_key  # e.g. an adapter id: blocks are shared only within the same key
        self.images = images  # the prompt's images (shared by the request's sequences), or None
        self.status = SequenceStatus.WAITING
        self.num_computed_tokens = 0  # tokens whose K/V are in the cache
        self.num_cached_tokens = 0  # of those, how many came from the prefix cache at admission
        self.block_table: list[int] = []
        self.block_hashes: list[bytes] = []  # chained hashes of this sequence's full blocks, in order
        self.logprobs: list[float] = []
        self.top_logprobs: list[dict[int, float]] = []
        # Prompt logprobs need every prompt position computed, so such sequences skip the prefix cache.
        self.prompt_logprobs: list[float | None] | None = [None] if params.prompt_logprobs else None
        # and, when the request asks for top logprobs too, the top ones at each prompt position
        self.prompt_top_logprobs: list[dict[int, float] | None] | None = (
            [None] if params.prompt_logprobs and params.top_logprobs else None
        )
        self.draft_token_ids: list[int] = []  # proposed by speculative decoding, verified in the next forward
        self.draft_probs = None  # [len(drafts), V] float32 draft distributions, or None for a deterministic proposer
        self.speculation = SpeculationStats()
        self.grammar = None  # a structured.SequenceGrammar when the request constrains the output
        self.arrival_time = time.monotonic()
        self.first_token_time: float | None = None
        self.last_token_time: float | None = None
        self.num_preemptions = 0
        self.keep_blocks = False  # a prefill worker keeps a finished sequence's blocks until they are sent
        self.imported = False  # a decode worker received this sequence's prompt K/V from a prefill worker

    @property
    def output_token_ids(self) -> list[int]:
        return self.output.token_ids

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output.token_ids)

    def token_ids(self) -> list[int]:
        return self.prompt_token_ids + self.output.token_ids

    def tokens_at(self, start: int, count: int) -> list[int]:
        """`count` tokens from position `start` of prompt, output and drafts, without copying them all."""
        prompt, output = self.prompt_token_ids, self.output.token_ids
        if start >= len(prompt) and start + count <= len(prompt) + len(output):
            return output[start - len(prompt) : start - len(prompt) + count]
        return (prompt + output + self.draft_token_ids)[start : start + count]

    @property
    def shares_prefix(self) -> bool:
        return self.prompt_logprobs is None and not self.imported

    @property
    def is_finished(self) -> bool:
        return self.status.is_finished

    @property
    def num_uncomputed_tokens(self) -> int:
        """Tokens the next forward can compute, draft tokens included."""
        return self.num_tokens + len(self.draft_token_ids) - self.num_computed_tokens

    @property
    def is_decoding(self) -> bool:
        """Every known token but the last is in the cache: the next forward produces a new token."""
        return self.num_computed_tokens == self.num_tokens - 1

    def __repr__(self) -> str:
        return (
            f"Sequence({self.seq_id}, {self.status.value}, tokens={self.num_tokens}, "
            f"computed={self.num_computed_tokens}, blocks={self.block_table})"
        )
