"""Activation capture on core's `LlamaModel` through torch forward hooks on the modules that produce each site.

Sites, keyed `(layer, site)`:
- `(i, "resid")`: the residual stream entering decoder layer i; `(0, "resid")` is the embedding output and
  `(num_layers, "resid")` the last layer's output before the final norm (HF's `hidden_states` numbering).
- `(i, "attn")` / `(i, "mlp")`: what layer i's attention / MLP adds to the residual (after `o_proj` / `down_proj`).

Nothing is attached while no capture is open, so the forward runs exactly the code it runs without this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn

from ..errors import InvalidParameterError
from ..models.attention import DenseCausalAttention
from ..models.llama import LlamaModel

SITES = ("resid", "attn", "mlp")
Key = tuple[int, str]
Positions = str | Sequence[int]


def site_module(model: LlamaModel, layer: int, site: str) -> nn.Module:
    """The module whose output is the activation at `(layer, site)`."""
    num_layers = model.config.num_layers
    if site == "resid":
        if not 0 <= layer <= num_layers:
            raise InvalidParameterError(f"resid layer {layer} is outside [0, {num_layers}] (0 is the embedding)")
        return model.embed_tokens if layer == 0 else model.layers[layer - 1]
    if site in ("attn", "mlp"):
        if not 0 <= layer < num_layers:
            raise InvalidParameterError(f"{site} layer {layer} is outside [0, {num_layers - 1}]")
        block = model.layers[layer]
        return block.self_attn if site == "attn" else block.mlp
    raise InvalidParameterError(f"unknown site {site!r}; choose from {', '.join(SITES)}")


def all_keys(model: LlamaModel, sites: Iterable[str] = SITES, layers: Iterable[int] | None = None) -> list[Key]:
    """Every (layer, site) for these sites; `layers` None means each layer the site has."""
    keys = []
    for site in sites:
        last = model.config.num_layers + (1 if site == "resid" else 0)
        for layer in range(last) if layers is None else layers:
            site_module(model, layer, site)  # validates
            keys.append((layer, site))
    return keys


class Capture:
    """What an open `capture()` recorded: per key, the selected token rows of each forward call."""

    def __init__(self, keys: list[Key]):
        self.keys = keys
        self.calls: dict[Key, list[torch.Tensor]] = {key: [] for key in keys}

    def tensors(self) -> dict[Key, torch.Tensor]:
        """Per key, the rows of every forward call concatenated in call order: [rows, hidden]."""
        missing = [key for key, calls in self.calls.items() if not calls]
        if missing:
            raise InvalidParameterError(f"no forward ran while capturing; nothing recorded for {missing[0]}")
        return {key: torch.cat(calls) for key, calls in self.calls.items()}


def _row_selector(positions: Positions):
    """A function from a flat [N, hidden] output to the selected rows (a copy, or the output itself)."""
    if isinstance(positions, str):
        if positions == "all":
            return lambda output: output.detach()
        if positions == "last":
            return lambda output: output.detach()[-1:].clone()
        raise InvalidParameterError(f"positions must be 'all', 'last' or a list of token indices, not {positions!r}")
    index = [int(p) for p in positions]
    if not index:
        raise InvalidParameterError("positions is an empty list")

    def select(output: torch.Tensor) -> torch.Tensor:
        n = output.shape[0]
        bad = [p for p in index if not -n <= p < n]
        if bad:
            raise InvalidParameterError(f"position {bad[0]} is outside this forward's {n} tokens")
        return output.detach()[torch.tensor(index, device=output.device)]

    return select


@contextlib.contextmanager
def capture(
    model: LlamaModel,
    keys: Iterable[Key] | None = None,
    positions: Positions = "all",
    *,
    sites: Iterable[str] = SITES,
    layers: Iterable[int] | None = None,
) -> Iterator[Capture]:
    """Record activations of every forward run inside the block. `keys` (or `sites` x `layers`) chooses what;
    `positions` indexes the flat tokens of each forward call ('all', 'last' or a list; negative from the end).
    The hooks are removed on exit, whatever happened."""
    keys = list(keys) if keys is not None else all_keys(model, sites, layers)
    modules = [site_module(model, layer, site) for layer, site in keys]
    select = _row_selector(positions)
    record = Capture(keys)
    handles = []
    try:
        for key, module in zip(keys, modules, strict=True):
            calls = record.calls[key]
            handles.append(module.register_forward_hook(lambda _m, _args, out, calls=calls: calls.append(select(out))))
        yield record
    finally:
        for handle in handles:
            handle.remove()


def batch_layout(prompts: Sequence[Sequence[int]], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Left-padded ids [B, T], positions [B, T] and the valid mask [B, T] (as core's generate lays out a batch)."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise InvalidParameterError("every prompt needs at least one token")
    longest = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), longest, dtype=torch.int64, device=device)
    valid = torch.zeros(len(prompts), longest, dtype=torch.bool, device=device)
    for row, prompt in enumerate(prompts):
        ids[row, longest - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.int64)
        valid[row, longest - len(prompt) :] = True
    positions = (valid.cumsum(dim=1) - 1).clamp(min=0)
    return ids, positions, valid


def _prompt_columns(lengths: Sequence[int], longest: int, positions: Positions) -> list[list[int]]:
    """Per prompt, the padded columns of its selected positions (indices count within each prompt)."""
    if positions == "all":
        if len(set(lengths)) > 1:
            raise InvalidParameterError(
                "positions='all' needs prompts of one length; pass a list of positions or capture one prompt at a time"
            )
        chosen: Sequence[int] = range(lengths[0])
    elif positions == "last":
        chosen = [-1]
    elif isinstance(positions, str):
        raise InvalidParameterError(f"positions must be 'all', 'last' or a list of token indices, not {positions!r}")
    else:
        chosen = [int(p) for p in positions]
    columns = []
    for n in lengths:
        bad = [p for p in chosen if not -n <= p < n]
        if bad:
            raise InvalidParameterError(f"position {bad[0]} is outside a prompt of {n} tokens")
        columns.append([longest - n + (p % n) for p in chosen])
    return columns


@torch.inference_mode()
def capture_activations(
    model: LlamaModel,
    prompts: Sequence[Sequence[int]],
    keys: Iterable[Key] | None = None,
    positions: Positions = "last",
    *,
    sites: Iterable[str] = SITES,
    layers: Iterable[int] | None = None,
    batch_size: int = 16,
) -> dict[Key, torch.Tensor]:
    """Activations [num_prompts, num_positions, hidden] per key for token-id prompts, run in left-padded
    batches; positions count within each prompt ('last', 'all' for prompts of one length, or a list)."""
    keys = list(keys) if keys is not None else all_keys(model, sites, layers)
    chunks: dict[Key, list[torch.Tensor]] = {key: [] for key in keys}
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        ids, pos, valid = batch_layout(batch, model.device)
        b, t = ids.shape
        columns = _prompt_columns([len(p) for p in batch], t, positions)
        flat = [row * t + col for row, cols in enumerate(columns) for col in cols]
        with capture(model, keys, flat) as record:
            model(ids.flatten(), pos.flatten(), DenseCausalAttention(b, t, key_valid=valid, device=model.device))
        for key, rows in record.tensors().items():
            chunks[key].append(rows.view(b, len(columns[0]), -1))
    return {key: torch.cat(parts) for key, parts in chunks.items()}
