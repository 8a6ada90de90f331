"""`Speculator`: proposes drafts for decoding sequences, records acceptance, switches itself off
per sequence when speculation would be slower than plain decoding."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from llmkit.core import ops
from llmkit.core.errors import InvalidParameterError
from llmkit.core.models.pretrained import Pretrained, load_pretrained

from ..block_manager import BlockManager
from ..sequence import Sequence
from .proposers import DraftModelProposer, EarlyExitProposer, NgramProposer, Proposer

if TYPE_CHECKING:
    from ..model_runner import ModelRunner

METHODS = ("ngram", "early_exit", "draft")


@dataclasses.dataclass
class SpeculativeConfig:
    """`method`: ngram (prompt lookup), early_exit (the target's first layers) or draft (a smaller model)."""

    method: str = "ngram"
    num_tokens: int = 4
    ngram_min: int = 2
    ngram_max: int = 4
    early_exit_layers: int | None = None  # default: a quarter of the target's layers
    draft_model: str | None = None
    draft_num_blocks: int = 1024
    adaptive: bool = True
    min_proposals: int = 4  # proposals seen before a sequence's speculation is judged
    verify_cost: float = 1.1  # a verify step over k drafts relative to a plain decode step (see docs/serve.md)


@dataclasses.dataclass
class ProposerStats:
    proposals: int = 0
    proposed: int = 0
    accepted: int = 0
    disabled_sequences: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def mean_accepted_length(self) -> float:
        return self.accepted / self.proposals if self.proposals else 0.0


class Speculator:
    """Owned by the scheduler: `propose` runs at the start of `schedule()`, `record` in the update."""

    def __init__(
        self,
        config: SpeculativeConfig,
        runner: ModelRunner,
        block_manager: BlockManager,
        target: Pretrained,
        make_runner: type[ModelRunner],
    ) -> None:
        """`make_runner` builds the draft model's runner (method "draft"): the `ModelRunner` class, passed in
        because the runner's sampling stage imports this package."""
        if config.method not in METHODS:
            raise InvalidParameterError(
                f"speculative method must be one of {', '.join(METHODS)}, got {config.method!r}"
            )
        if config.num_tokens < 1:
            raise InvalidParameterError(f"num_tokens must be >= 1, got {config.num_tokens}")
        self.config, self.block_manager = config, block_manager
        self.context_length = target.config.max_position_embeddings
        self.proposer = self._build_proposer(config, runner, block_manager.block_size, target, make_runner)
        self.stats = ProposerStats()
        self.draft_seconds = 0.0
        self.step_seconds = 0.0

    @staticmethod
    def _build_proposer(
        config: SpeculativeConfig,
        runner: ModelRunner,
        block_size: int,
        target: Pretrained,
        make_runner: type[ModelRunner],
    ) -> Proposer:
        if config.method == "ngram":
            return NgramProposer(config.ngram_min, config.ngram_max)
        if config.method == "early_exit":
            layers = config.early_exit_layers or max(1, target.config.num_layers // 4)
            return EarlyExitProposer(runner, layers)
        if config.draft_model is None:
            raise InvalidParameterError("speculative method 'draft' needs draft_model (a catalog name or path)")
        draft = load_pretrained(config.draft_model, dtype=target.model.dtype, device=target.model.device, quiet=True)
        if (
            draft.tokenizer.vocab_size != target.tokenizer.vocab_size
            or draft.config.vocab_size != target.config.vocab_size
        ):
            raise InvalidParameterError("the draft model must share the target's tokenizer and vocabulary")
        cfg = draft.config
        caches = [
            ops.allocate(
                config.draft_num_blocks,
                cfg.num_kv_heads,
                block_size,
                cfg.head_dim,
                "auto",
                draft.model.dtype,
                draft.model.device,
            )
            for _ in range(cfg.num_layers)
        ]
        return DraftModelProposer(
            make_runner(draft.model, caches, block_size), BlockManager(config.draft_num_blocks, block_size, False)
        )

    def propose(self, running: list[Sequence]) -> None:
        """Give each decoding sequence (that still speculates) up to num_tokens drafts, blocks reserved."""
        started = time.perf_counter()
        chosen, budgets = [], []
        for seq in running:
            if not (seq.is_decoding and seq.speculation.enabled and not seq.draft_token_ids):
                continue
            room = min(seq.output.max_new_tokens - len(seq.output_token_ids), self.context_length - seq.num_tokens) - 1
            k = min(self.config.num_tokens, room)
            if k < 1 or not self.block_manager.allocate_for(seq, 1 + k):
                continue
            chosen.append(seq)
            budgets.append(k)
        if not chosen:
            return
        proposals = self.proposer.propose(chosen, max(budgets))
        for seq, k, proposal in zip(chosen, budgets, proposals, strict=True):
            seq.draft_token_ids = proposal.token_ids[:k]
            seq.draft_probs = None if proposal.probs is None else proposal.probs[: len(seq.draft_token_ids)]
            if not seq.draft_token_ids:
                self.block_manager.trim(seq, seq.num_tokens)
        self.draft_seconds += time.perf_counter() - started

    def record(self, seq: Sequence, proposed: int, accepted: int) -> None:
        """Account one verified proposal; switch speculation off for `seq` when it no longer pays."""
        stats = seq.speculation
        stats.proposals += 1
        stats.proposed += proposed
        stats.accepted += accepted
        self.stats.proposals += 1
        self.stats.proposed += proposed
        self.stats.accepted += accepted
        if (
            self.config.adaptive
            and stats.proposals >= self.config.min_proposals
            and self.expected_speedup(stats.mean_accepted) < 1.0
        ):
            stats.enabled = False
            self.stats.disabled_sequences += 1

    def expected_speedup(self, mean_accepted: float) -> float:
        """Tokens per speculative step over its cost in plain decode steps (verify cost plus the
        measured share of step time spent drafting)."""
        draft_share = self.draft_seconds / self.step_seconds if self.step_seconds else 0.0
        return (1.0 + mean_accepted) / (self.config.verify_cost + draft_share)

    def release(self, seq: Sequence) -> None:
        seq.draft_token_ids, seq.draft_probs = [], None
        self.proposer.release(seq)
