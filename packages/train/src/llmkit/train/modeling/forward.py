"""Forward passes the trainers share: hidden states of a `TokenBatch`, token log-probs, last-token picks."""

from __future__ import annotations

import contextlib

import torch
from torch.utils.checkpoint import checkpoint

from llmkit.core.models.attention import DenseCausalAttention
from llmkit.core.models.llama import LlamaModel

from ..data.packing import TokenBatch


def hidden_states(model: LlamaModel, batch: TokenBatch) -> torch.Tensor:
    """Final hidden states [B, T, H]; packed sequences attend only within their segment."""
    b, t = batch.input_ids.shape
    attention = DenseCausalAttention(b, t, batch.valid, batch.segment_ids, device=batch.input_ids.device)
    hidden = model(batch.input_ids.reshape(-1), batch.positions.reshape(-1), attention)
    return hidden.view(b, t, -1)


def target_logprobs(
    model: LlamaModel, hidden: torch.Tensor, batch: TokenBatch, temperature: float = 1.0
) -> torch.Tensor:
    """log p(token t | tokens before it) at every target position, 0 elsewhere: [B, T] float32.
    RL passes its sampling temperature so the log-probs are those of the distribution it sampled from."""
    predicting = batch.targets[:, 1:]
    rows = hidden[:, :-1][predicting]
    labels = batch.input_ids[:, 1:][predicting]
    logits = model.compute_logits(rows)
    if temperature != 1.0:
        logits = logits / temperature
    picked = logits.gather(-1, labels[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    out = torch.zeros(batch.targets.shape, dtype=picked.dtype, device=picked.device)
    return out.masked_scatter(batch.targets, picked)


def sequence_logprobs(model: LlamaModel, tokens: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed target log-probs per row and the number of targets per row (rows hold one sequence each)."""
    logprobs = target_logprobs(model, hidden_states(model, tokens), tokens)
    return logprobs.sum(-1), tokens.targets.sum(-1)


def target_entropy(model: LlamaModel, hidden: torch.Tensor, batch: TokenBatch) -> torch.Tensor:
    """Mean entropy of the next-token distribution over target positions (a diagnostic, no gradient)."""
    with torch.no_grad():
        logits = model.compute_logits(hidden[:, :-1][batch.targets[:, 1:]])
        logp = logits.log_softmax(-1)
        return -(logp.exp() * logp).sum(-1).mean()


def last_valid_index(batch: TokenBatch) -> torch.Tensor:
    """Index of each row's last real token [B] (rows hold one sequence each)."""
    return batch.valid.long().sum(-1) - 1


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on the model's device type when enabled."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def enable_gradient_checkpointing(model: LlamaModel) -> None:
    """Recompute each decoder layer during backward (non-reentrant); inference is unaffected.
    Copy the model (a reference) before calling this: the patched forwards point at the original layers."""
    for layer in model.layers:
        if getattr(layer, "_llmkit_checkpointed", False):
            continue
        original = layer.forward

        def forward(*args, _original=original):
            if torch.is_grad_enabled():
                return checkpoint(_original, *args, use_reentrant=False)
            return _original(*args)

        layer.forward = forward
        layer._llmkit_checkpointed = True
