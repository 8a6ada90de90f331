"""`GrammarManager`: the engine's part of structured outputs — compiling grammars, one matcher per
constrained sequence, and its token masks.

A request whose grammar is still compiling (on the compiler's thread, so other requests keep decoding)
waits in the scheduler with status WAITING_FOR_GRAMMAR; the scheduler attaches matchers when it is ready. The masks for
step N+1 are computed on a worker thread while step N+1's forward runs (the native matcher and
torch both release the GIL); sampling applies them with `llmkit.core.ops.apply_token_bitmask_`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
from typing import Any

import numpy as np
import torch

from llmkit.core import ops
from llmkit.core.structured import (
    CompiledGrammar,
    GrammarCompiler,
    GrammarError,
    StructuredOutput,
    compile_structured,
    create_matcher,
    fill_next_token_bitmasks,
    prepare_matcher,
    vocabulary_index,
    words_for,
)

from ..sequence import Sequence

logger = logging.getLogger(__name__)
MAX_JUMP_FORWARD = 64  # forced tokens appended after one sampled token, at most
# What `GrammarManager.prewarm` compiles: a value of each JSON type (with the string formats' pieces), so that
# their shared pieces are known before the first request.
_PREWARM_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string"},
        "date": {"type": "string", "format": "date-time"},
        "count": {"type": "integer"},
        "ratio": {"type": "number"},
        "flag": {"type": "boolean"},
        "items": {"type": "array", "items": {}},
    },
}


@dataclasses.dataclass
class SequenceGrammar:
    """A sequence's matcher and the mask for its next token (valid while `mask_at` equals the number of
    tokens the matcher accepted)."""

    matcher: Any
    mask: torch.Tensor | None = None  # int32 [words]
    mask_at: int = -1
    pending: concurrent.futures.Future | None = None
    rejected: bool = False  # the sampler produced a token the grammar refused (a dead end)

    @property
    def fresh(self) -> bool:
        return self.mask is not None and self.mask_at == self.matcher.num_accepted_tokens


class GrammarManager:
    def __init__(self, tokenizer, vocab_size: int) -> None:
        self.tokenizer, self.model_vocab_size = tokenizer, vocab_size
        # A grammar is handed to its requests once compiled and indexed (each state's tokens are classified on
        # its first visit); every state is then classified on a thread of its own while decoding goes on.
        self.compiler = GrammarCompiler(
            prepare=lambda grammar: prepare_matcher(grammar, self.vocabulary, 1, classify=False),
            warm=lambda grammar: prepare_matcher(grammar, self.vocabulary, 1),
        )
        self._vocabulary = None
        self._vocabulary_lock = threading.Lock()  # built once, by whichever thread needs it first
        self._workers = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llmkit-masks")
        self.jump_forward_tokens = 0

    @property
    def vocabulary(self):
        with self._vocabulary_lock:
            if self._vocabulary is None:
                width = max(self.model_vocab_size, self.tokenizer.vocab_size)
                self._vocabulary = vocabulary_index(self.tokenizer, width)
            return self._vocabulary

    def prewarm(self) -> concurrent.futures.Future:
        """Build the vocabulary index and the pieces every JSON grammar shares now, on the mask worker's
        thread, so that the first structured request does not wait for them (0.35 s on the default model,
        most of it the vocabulary). Nothing is cached under a request's key; the server calls it at startup."""

        def warm() -> None:
            grammar = compile_structured(StructuredOutput("json_schema", _PREWARM_SCHEMA))
            prepare_matcher(grammar, self.vocabulary, 1, classify=False)

        def report(done: concurrent.futures.Future) -> None:
            if done.exception() is not None:  # the first structured request will meet it again, with its own error
                logger.warning("llmkit: structured outputs could not be prewarmed: %s", done.exception())

        future = self._workers.submit(warm)
        future.add_done_callback(report)
        return future

    @property
    def words(self) -> int:
        return words_for(self.vocabulary.vocab_size)

    # --- requests -------------------------------------------------------------------------------
    def resolve(self, structured: StructuredOutput | CompiledGrammar) -> CompiledGrammar | concurrent.futures.Future:
        """A compiled grammar now (given, or cached), else the future of its compilation."""
        if isinstance(structured, CompiledGrammar):
            return structured
        if not isinstance(structured, StructuredOutput):
            raise GrammarError(
                f"structured must be a StructuredOutput or CompiledGrammar, got {type(structured).__name__}"
            )
        return self.compiler.cached(structured) or self.compiler.submit(structured)

    def attach(self, grammar: CompiledGrammar, sequences: list[Sequence]) -> None:
        for seq in sequences:
            stop_ids = set(self.tokenizer.eos_token_ids) | set(seq.params.stop_token_ids)
            stop_ids = tuple(sorted(t for t in stop_ids if 0 <= t < self.vocabulary.vocab_size))
            seq.grammar = SequenceGrammar(create_matcher(grammar, self.vocabulary, stop_ids))

    # --- masks ----------------------------------------------------------------------------------
    def start_masks(self, sequences: list[Sequence]) -> None:
        """Compute, on the worker thread, the next-token masks that are not fresh (overlaps the next forward)."""
        states = [s.grammar for s in sequences if s.grammar is not None and not s.is_finished and not s.grammar.fresh]
        if not states:
            return
        bitmask = torch.empty(len(states), self.words, dtype=torch.int32)
        versions = [g.matcher.num_accepted_tokens for g in states]
        matchers = [g.matcher for g in states]
        future = self._workers.submit(fill_next_token_bitmasks, matchers, bitmask, list(range(len(states))))
        for k, g in enumerate(states):
            g.pending = future
            g.mask, g.mask_at = bitmask[k], versions[k]

    def _finish_pending(self, states: list[SequenceGrammar]) -> None:
        for g in states:
            if g.pending is not None:
                g.pending.result()
                g.pending = None

    def mask_of(self, g: SequenceGrammar) -> torch.Tensor:
        self._finish_pending([g])
        if not g.fresh:
            row = torch.empty(1, self.words, dtype=torch.int32)
            g.matcher.fill_next_token_bitmask(row, 0)
            g.mask, g.mask_at = row[0], g.matcher.num_accepted_tokens
        return g.mask

    def apply(self, logits: torch.Tensor, sequences: list[Sequence]) -> None:
        """Mask the rows of constrained sequences in place (row i belongs to sequences[i])."""
        rows = [i for i, s in enumerate(sequences) if s.grammar is not None]
        if not rows:
            return
        self._finish_pending([sequences[i].grammar for i in rows])
        bitmask = torch.full((logits.shape[0], words_for(logits.shape[-1])), -1, dtype=torch.int32)
        for i in rows:
            seq = sequences[i]
            bitmask[i] = self.mask_of(seq.grammar)[: bitmask.shape[1]]
            seq.grammar.matcher.restrict_to_budget(bitmask, i, self.tokens_left(seq))
        ops.apply_token_bitmask_(logits, bitmask.to(logits.device), torch.tensor(rows, device=logits.device))

    @staticmethod
    def tokens_left(seq: Sequence) -> int:
        """Tokens the sequence may still emit, the next one included (the grammar must finish within them)."""
        return seq.output.max_new_tokens - len(seq.output.token_ids)

    def accept(self, seq: Sequence, token: int) -> bool:
        g = seq.grammar
        self._finish_pending([g])
        ok = g.matcher.accept_token(int(token))
        g.rejected = g.rejected or not ok
        return ok

    def forced_tokens(self, seq: Sequence, room: int) -> list[int]:
        """Jump-forward: while the grammar allows exactly one token (not a stop token), take it without
        sampling — exactly what masked sampling would pick — and leave the next mask fresh."""
        g, forced = seq.grammar, []
        if seq.params.logprobs or seq.params.top_logprobs or g.rejected or g.matcher.finish_cost() + 1 >= room:
            return forced  # near the end of the budget every token goes through the budget check
        stop_ids = set(g.matcher.stop_token_ids)
        while len(forced) < min(room, MAX_JUMP_FORWARD):
            allowed = np.flatnonzero(np.unpackbits(self.mask_of(g).numpy().view(np.uint8), bitorder="little"))
            if len(allowed) != 1 or int(allowed[0]) in stop_ids or not g.matcher.accept_token(int(allowed[0])):
                break
            forced.append(int(allowed[0]))
        self.jump_forward_tokens += len(forced)
        return forced

    def draft_masks(self, seq: Sequence, count: int) -> torch.Tensor:
        """int32 [count, words]: the mask after the last token and after each of the count - 1 drafts; the
        matcher ends where it started. Rows after a draft the grammar refuses allow everything (unused)."""
        g = seq.grammar
        self._finish_pending([g])
        masks = torch.full((count, self.words), -1, dtype=torch.int32)
        taken = 0
        for k in range(count):
            g.matcher.fill_next_token_bitmask(masks, k)
            g.matcher.restrict_to_budget(masks, k, self.tokens_left(seq) - k)
            if k == count - 1 or not g.matcher.accept_token(seq.draft_token_ids[k]):
                break
            taken += 1
        g.matcher.rollback(taken)
        return masks

    def shutdown(self) -> None:
        self._workers.shutdown(wait=False, cancel_futures=True)
        self.compiler.shutdown()
