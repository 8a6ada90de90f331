"""Locally typical sampling as an llmkit sampler plugin (entry point `typical` in group `llmkit`)."""

from __future__ import annotations

import pluggy
import torch

hookimpl = pluggy.HookimplMarker("llmkit")


class TypicalSampler:
    """Keep the tokens whose surprisal is closest to the entropy, up to probability `mass` (per row)."""

    def validate(self, args: dict) -> None:
        unknown = set(args) - {"mass", "min_tokens_to_keep"}
        if unknown:
            raise ValueError(f"unknown arguments {sorted(unknown)}; expected mass, min_tokens_to_keep")
        mass = args.get("mass", 0.9)
        if not (isinstance(mass, int | float) and 0 < mass < 1):
            raise ValueError(f"mass must be in (0, 1), got {mass!r}")
        keep = args.get("min_tokens_to_keep", 1)
        if not (isinstance(keep, int) and keep >= 1):
            raise ValueError(f"min_tokens_to_keep must be an integer >= 1, got {keep!r}")

    def __call__(self, logits: torch.Tensor, args: list[dict]) -> torch.Tensor:
        mass = torch.tensor([a.get("mass", 0.9) for a in args], dtype=logits.dtype, device=logits.device)
        keep = torch.tensor([a.get("min_tokens_to_keep", 1) for a in args], device=logits.device)
        logp = logits.log_softmax(dim=-1)
        p = logp.exp()
        entropy = -(logp * p).nansum(dim=-1, keepdim=True)
        distance = (-logp - entropy).abs()
        sorted_distance, order = distance.sort(dim=-1)
        cumulative = logits.gather(-1, order).softmax(dim=-1).cumsum(dim=-1)
        last = (cumulative < mass[:, None]).sum(dim=-1).clamp(max=logits.shape[-1] - 1)
        remove = sorted_distance > sorted_distance.gather(-1, last[:, None])
        ranks = torch.arange(logits.shape[-1], device=logits.device)
        remove &= ranks[None, :] >= keep[:, None]
        return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


@hookimpl
def llmkit_register_samplers(register):
    register("typical", TypicalSampler())
