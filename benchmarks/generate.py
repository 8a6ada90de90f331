"""Prefill and decode throughput of the default model: llmkit's reference generate() next to
HF transformers (same GGUF, dequantized to float32) and llama-cpp-python when installed.

    python benchmarks/generate.py [--repeats 3] [--prompt-tokens 128] [--new-tokens 64]

Prints medians over repeats and the llmkit/peer ratio; the machine is shared, so compare ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from llmkit.core import SamplingParams, load_pretrained, stream_generate
from llmkit.core.models.attention import KVCache

TEXT = (
    "The history of computing is a story of abstraction layered on abstraction: relays became vacuum tubes, "
    "tubes became transistors, transistors became integrated circuits, and each layer let programmers forget "
    "the one below. "
)


def prompt_ids(tokenizer, length: int, offset: int) -> list[int]:
    ids = tokenizer.encode(TEXT * 20)
    return ids[offset : offset + length]


def llmkit_prefill(model, prompts) -> float:
    batch, length = len(prompts), len(prompts[0])
    cfg = model.config
    ids = torch.tensor(prompts)
    cache = KVCache(cfg.num_layers, batch, length, cfg.num_kv_heads, cfg.head_dim, model.dtype)
    positions = torch.arange(length).repeat(batch)
    start = time.perf_counter()
    with torch.inference_mode():
        hidden = model(ids.flatten(), positions, cache.step(torch.ones(batch, length, dtype=torch.bool)))
        model.compute_logits(hidden.view(batch, length, -1)[:, -1])
    return time.perf_counter() - start


def llmkit_decode(model, tokenizer, prompts, new_tokens) -> float:
    """Seconds per decode step (after the first token), whole batch."""
    params = SamplingParams(temperature=0, max_tokens=new_tokens, ignore_eos=True)
    stamps = []
    for event in stream_generate(model, tokenizer, prompts, params):
        if event.prompt_index == 0:
            stamps.append(time.perf_counter())
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def hf_prefill(model, prompts) -> float:
    ids = torch.tensor(prompts)
    start = time.perf_counter()
    with torch.inference_mode():
        model(ids, use_cache=True)
    return time.perf_counter() - start


def hf_decode(model, prompts, new_tokens) -> float:
    ids = torch.tensor(prompts)
    with torch.inference_mode():
        start = time.perf_counter()
        model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False)
        first = time.perf_counter() - start
        start = time.perf_counter()
        model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        total = time.perf_counter() - start
    return (total - first) / (new_tokens - 1)


def llamacpp_runs(path, prompts, new_tokens):
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=1024, n_threads=torch.get_num_threads(), verbose=False)
    start = time.perf_counter()
    llm.eval(prompts[0])
    prefill = time.perf_counter() - start
    llm.reset()
    start = time.perf_counter()
    llm.create_completion(prompts[0], max_tokens=new_tokens, temperature=0)
    total = time.perf_counter() - start
    return prefill, (total - prefill) / (new_tokens - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    console = Console()
    smol = load_pretrained()
    peers = {}
    if importlib.util.find_spec("transformers"):
        import transformers

        with console.status("loading the GGUF in transformers"):
            hf = transformers.AutoModelForCausalLM.from_pretrained(
                str(smol.path.parent), gguf_file=smol.path.name, dtype=torch.float32
            ).eval()
        peers["transformers"] = hf
    results: dict[tuple[str, str], list[float]] = {}
    for batch in (1, 8):
        prompts = [prompt_ids(smol.tokenizer, args.prompt_tokens, 7 * i) for i in range(batch)]
        for _ in range(args.repeats):
            results.setdefault(("llmkit", f"prefill b{batch}"), []).append(
                batch * args.prompt_tokens / llmkit_prefill(smol.model, prompts)
            )
            results.setdefault(("llmkit", f"decode b{batch}"), []).append(
                batch / llmkit_decode(smol.model, smol.tokenizer, prompts, args.new_tokens)
            )
            if "transformers" in peers:
                hf = peers["transformers"]
                results.setdefault(("transformers", f"prefill b{batch}"), []).append(
                    batch * args.prompt_tokens / hf_prefill(hf, prompts)
                )
                results.setdefault(("transformers", f"decode b{batch}"), []).append(
                    batch
                    / hf_decode(
                        hf,
                        prompts,
                        args.new_tokens,
                    )
                )
            if batch == 1 and importlib.util.find_spec("llama_cpp"):
                prefill, step = llamacpp_runs(smol.path, prompts, args.new_tokens)
                results.setdefault(("llama.cpp (Q4_1)", "prefill b1"), []).append(args.prompt_tokens / prefill)
                results.setdefault(("llama.cpp (Q4_1)", "decode b1"), []).append(1 / step)
    engines = list(dict.fromkeys(engine for engine, _ in results))
    metrics = list(dict.fromkeys(metric for _, metric in results))
    table = Table(
        title=f"tokens/s, median of {args.repeats} (prompt {args.prompt_tokens}, {args.new_tokens} new, {torch.get_num_threads()} threads, fp32)"
    )
    table.add_column("metric")
    for engine in engines:
        table.add_column(engine, justify="right")
    for peer in engines[1:]:
        table.add_column(f"llmkit / {peer}", justify="right")
    for metric in metrics:
        medians = {e: statistics.median(results[(e, metric)]) for e in engines if (e, metric) in results}
        row = [metric] + [f"{medians[e]:.1f}" if e in medians else "-" for e in engines]
        row += [f"{medians['llmkit'] / medians[p]:.2f}x" if p in medians else "-" for p in engines[1:]]
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
