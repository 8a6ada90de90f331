"""What looking inside the model costs: a core decode step (one token, KV cache, default model) with no
hooks ever attached, with activation capture on (every site of every layer), after capture is closed,
and with a steering vector; then the engine's batch-1 decode with and without steering (steering sends
the engine to the torch reference forward).

    python benchmarks/interp_overhead.py [--threads 1] [--steps 32] [--rounds 5] [--engine-tokens 64] [--weights float32] [--model NAME]

The rows run interleaved, round after round; each cell is the median per-step time over all rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from llmkit.core import SamplingParams, load_pretrained
from llmkit.core.interp import SteeringVector, capture, steer
from llmkit.core.models.attention import KVCache
from llmkit.core.models.quantized import set_activations


def decode_steps(model, prompt_len: int, steps: int) -> list[float]:
    """Seconds per decode step (forward of one token + LM head) after a prefill of prompt_len tokens."""
    config = model.config
    cache = KVCache(config.num_layers, 1, prompt_len + steps, config.num_kv_heads, config.head_dim, model.dtype)
    ids = torch.arange(100, 100 + prompt_len)[None]
    with torch.inference_mode():
        hidden = model(ids.flatten(), torch.arange(prompt_len), cache.step(torch.ones_like(ids, dtype=torch.bool)))
        token = model.compute_logits(hidden[-1:]).argmax(-1)
        times = []
        for step in range(steps):
            start = time.perf_counter()
            hidden = model(token, torch.tensor([prompt_len + step]), cache.step(torch.ones(1, 1, dtype=torch.bool)))
            token = model.compute_logits(hidden).argmax(-1)
            times.append(time.perf_counter() - start)
    return times


def engine_decode(pretrained, steering, tokens: int) -> float:
    """Batch-1 decode tokens/s of an Engine (greedy, ignore_eos), prefill excluded."""
    from llmkit.serve import Engine

    engine = Engine(pretrained, steering=steering, num_blocks=64)
    try:
        params = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True)
        engine.add_request("The weather today is", params)
        engine.step()  # prefill + first token
        start = time.perf_counter()
        while engine.has_unfinished():
            engine.step()
        return (tokens - 1) / (time.perf_counter() - start)
    finally:
        if engine.steering is not None:
            engine.steering.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--engine-tokens", type=int, default=64)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="catalog name, .gguf or HF directory")
    parser.add_argument(
        "--weights", default="float32", help="core model's weights: float32 (dense, fast steps) or as-stored"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_pretrained(args.model, weights=args.weights).model
    fresh = load_pretrained(args.model, weights=args.weights).model  # never gets a hook
    vector = SteeringVector(min(6, model.config.num_layers), torch.randn(model.config.hidden_size), scale=1.0)
    names = ("no hooks (never attached)", "capture on (every site, last token)", "capture closed", "steering on")
    rows: dict[str, list[float]] = {name: [] for name in names}
    decode_steps(model, 32, 4), decode_steps(fresh, 32, 4)  # warm-up
    for _ in range(args.rounds):
        rows[names[0]] += decode_steps(fresh, 32, args.steps)
        with capture(model, positions="last"):
            rows[names[1]] += decode_steps(model, 32, args.steps)
        rows[names[2]] += decode_steps(model, 32, args.steps)
        with steer(model, vector):
            rows[names[3]] += decode_steps(model, 32, args.steps)
    table = Table(
        f"core decode step, {args.model} ({args.weights}), {args.threads} thread(s)", "median ms", "vs no hooks"
    )
    base = statistics.median(rows["no hooks (never attached)"])
    for name, times in rows.items():
        median = statistics.median(times)
        table.add_row(name, f"{median * 1e3:.2f}", f"{median / base:.3f}x")
    console = Console()
    console.print(table)
    engine_pretrained = load_pretrained(args.model)
    set_activations(engine_pretrained.model, "int8")  # the engine's default for a model it loads itself
    plain = engine_decode(engine_pretrained, None, args.engine_tokens)
    steered = engine_decode(engine_pretrained, vector, args.engine_tokens)
    engine = Table("Engine batch-1 decode", "tokens/s")
    engine.add_row("native forward (no steering)", f"{plain:.1f}")
    engine.add_row("steering: torch reference forward", f"{steered:.1f}")
    console.print(engine)


if __name__ == "__main__":
    main()
