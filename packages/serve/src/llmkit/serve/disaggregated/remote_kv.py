"""The engine side of a KV transfer between disaggregated workers: a prefill worker holds a prompt's KV
blocks and exports them; a decode worker reserves blocks for the prompt (the sequence waits with status
WAITING_FOR_REMOTE_KV), writes the received K/V into them and lets the scheduler run it. Sequence
states change only through the scheduler's methods."""

from __future__ import annotations

import torch

from llmkit.core.errors import InvalidParameterError
from llmkit.core.sampling import SamplingParams

from ..engine import Engine
from ..sequence import Sequence


def start_held_prefill(engine: Engine, prompt_ids: list[int], params: SamplingParams, request_id: str) -> Sequence:
    """Queue the prompt for one token only; its blocks stay allocated when it finishes."""
    engine.add_request(prompt_ids, params.replace(max_tokens=1, n=1, logprobs=False, top_logprobs=0), request_id)
    seq = engine.requests[request_id].sequences[0]
    seq.keep_blocks = True
    return seq


def export_kv(engine: Engine, seq: Sequence) -> list[torch.Tensor]:
    """The held blocks of every layer, stacked: K, V [layers, blocks, kv_heads, block_size, dim] (+ scales)."""
    index = torch.tensor(seq.block_table, dtype=torch.int64, device=engine.runner.device)
    caches = engine.runner.caches
    parts = [
        torch.stack([c.key.index_select(0, index) for c in caches]),
        torch.stack([c.value.index_select(0, index) for c in caches]),
    ]
    if caches[0].key_scales is not None:
        parts += [
            torch.stack([c.key_scales.index_select(0, index) for c in caches]),
            torch.stack([c.value_scales.index_select(0, index) for c in caches]),
        ]
    return [p.contiguous() for p in parts]


def prefill_complete(seq: Sequence) -> bool:
    """Whether a finished held prefill computed its whole prompt (it did not fail or get aborted)."""
    return (
        seq.is_finished
        and seq.output.finish_reason not in ("abort", "error")
        and seq.num_computed_tokens >= len(seq.prompt_token_ids)
    )


def release_held(engine: Engine, seq: Sequence) -> None:
    """Free a held prefill's blocks, stopping it first if it still runs; calling it twice is harmless."""
    engine.abort(seq.request_id)
    engine.scheduler.release_kept_blocks(seq)


def kv_shapes(engine: Engine, num_blocks: int) -> list[tuple[tuple[int, ...], torch.dtype]]:
    """Shapes and dtypes of the tensors `export_kv` produces for `num_blocks` blocks."""
    caches = engine.runner.caches
    layers = len(caches)
    shapes = [((layers, num_blocks, *caches[0].key.shape[1:]), caches[0].key.dtype)] * 2
    if caches[0].key_scales is not None:
        shapes += [((layers, num_blocks, *caches[0].key_scales.shape[1:]), caches[0].key_scales.dtype)] * 2
    return shapes


def reserve_import(engine: Engine, prompt_ids: list[int], params: SamplingParams, request_id: str) -> Sequence:
    """Allocate blocks for a prompt computed elsewhere; the sequence starts once `finish_import` wrote them."""
    if params.n != 1:
        raise InvalidParameterError("disaggregated serving generates one sequence per request (n=1)")
    engine.add_request(prompt_ids, params, request_id)
    seq = engine.requests[request_id].sequences[0]
    if not engine.scheduler.reserve_remote_kv(seq):
        raise InvalidParameterError(f"the decode worker has no free KV blocks for a {len(prompt_ids)}-token prompt")
    return seq


def finish_import(engine: Engine, seq: Sequence, tensors: list[torch.Tensor]) -> None:
    """Write received K/V into the sequence's blocks and let it decode: the last prompt token is
    computed here, so the first output token is sampled by this engine like any other."""
    index = torch.tensor(seq.block_table, dtype=torch.int64, device=engine.runner.device)
    for layer, cache in enumerate(engine.runner.caches):
        cache.key.index_copy_(0, index, tensors[0][layer])
        cache.value.index_copy_(0, index, tensors[1][layer])
        if cache.key_scales is not None:
            cache.key_scales.index_copy_(0, index, tensors[2][layer])
            cache.value_scales.index_copy_(0, index, tensors[3][layer])
    engine.scheduler.remote_kv_arrived(seq)


def abandon_import(engine: Engine, seq: Sequence) -> None:
    """The transfer failed: drop the reserved blocks and the request."""
    engine.abort(seq.request_id)
