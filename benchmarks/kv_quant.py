"""KV-cache quantization: perplexity, tokens held per GB and decode speed per cache dtype.

    python benchmarks/kv_quant.py [--window 1024] [--chunk 256] [--decode-requests 16]

Perplexity of the default model over the license texts in /usr/share/common-licenses (GPL-3,
Apache-2.0, LGPL-3, MPL-2.0, GFDL-1.3 — on every Debian machine), scored through the engine's
prompt logprobs in windows of --window tokens, prefilled in chunks of --chunk tokens so later
tokens read earlier ones back from the quantized cache. Also the greedy answers to the golden
prompts per dtype and the decode throughput of a batch of requests.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from llmkit.core import SamplingParams, load_pretrained
from llmkit.core.ops import bytes_per_token
from llmkit.serve.engine import Engine

CORPUS = [
    Path("/usr/share/common-licenses") / name for name in ("GPL-3", "Apache-2.0", "LGPL-3", "MPL-2.0", "GFDL-1.3")
]
GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "smollm2-135m-instruct.json"
DTYPES = ("auto", "fp8_e4m3", "int8", "int4")


def perplexity(engine: Engine, ids: list[int], window: int) -> float:
    windows = [ids[i : i + window] for i in range(0, len(ids) - 1, window) if len(ids[i : i + window]) > 1]
    params = SamplingParams(temperature=0, max_tokens=1, prompt_logprobs=True)
    outputs = engine.generate(windows, params, progress=False)
    nll = [-lp for out in outputs for lp in out.prompt_logprobs[1:]]
    return math.exp(statistics.mean(nll))


def decode_speed(engine: Engine, prompts: list[list[int]], new_tokens: int) -> float:
    params = SamplingParams(temperature=0, max_tokens=new_tokens, ignore_eos=True)
    start = time.perf_counter()
    engine.generate(prompts, params, progress=False)
    return len(prompts) * new_tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--decode-requests", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    console = Console()
    smol = load_pretrained(quiet=True)
    text = "\n\n".join(path.read_text() for path in CORPUS if path.is_file())
    ids = smol.tokenizer.encode(text)
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else None
    cfg = smol.config
    rows, answers = {}, {}
    prompts = [ids[i * 97 : i * 97 + 128] for i in range(args.decode_requests)]
    for dtype in DTYPES:
        with console.status(f"kv_cache_dtype={dtype}"):
            engine = Engine(
                smol,
                kv_cache_memory="1GiB",
                kv_cache_dtype=dtype,
                max_num_batched_tokens=args.chunk,
                enable_prefix_caching=False,
            )
            per_token = cfg.num_layers * bytes_per_token(cfg.num_kv_heads, cfg.head_dim, dtype, smol.model.dtype)
            rows[dtype] = {
                "perplexity": perplexity(engine, ids, args.window),
                "tokens per GiB": 2**30 / per_token,
                "decode tok/s": decode_speed(
                    Engine(smol, kv_cache_memory="1GiB", kv_cache_dtype=dtype), prompts, args.new_tokens
                ),
            }
            if golden:
                greedy = SamplingParams(temperature=0, max_tokens=32, ignore_eos=True, skip_special_tokens=False)
                outs = engine.generate([c["ids_in"] for c in golden["cases"]], greedy, progress=False)
                answers[dtype] = [
                    next(
                        (
                            i
                            for i, (a, b) in enumerate(zip(o.completions[0].token_ids, c["ids_out"], strict=True))
                            if a != b
                        ),
                        None,
                    )
                    for o, c in zip(outs, golden["cases"], strict=True)
                ]
    base = rows["auto"]
    table = Table(
        title=f"KV cache dtypes: {len(ids)} tokens of license text, windows of {args.window}, chunks of {args.chunk}; {torch.get_num_threads()} threads"
    )
    for column in (
        "cache dtype",
        "perplexity",
        "vs auto",
        "tokens per GiB",
        "x auto",
        "decode tok/s",
        "x auto",
        "golden: first divergence",
    ):
        table.add_column(column, justify="left" if column == "cache dtype" else "right")
    for dtype, row in rows.items():
        table.add_row(
            dtype if dtype != "auto" else f"auto ({str(smol.model.dtype).removeprefix('torch.')})",
            f"{row['perplexity']:.3f}",
            f"{100 * (row['perplexity'] / base['perplexity'] - 1):+.2f}%",
            f"{row['tokens per GiB']:,.0f}",
            f"{row['tokens per GiB'] / base['tokens per GiB']:.2f}x",
            f"{row['decode tok/s']:.1f}",
            f"{row['decode tok/s'] / base['decode tok/s']:.2f}x",
            str(answers.get(dtype, "-")),
        )
    console.print(table)
    console.print(
        "golden column: per golden prompt, index of the first greedy token that differs from the fp32 golden ids (None = all 32 equal)"
    )


if __name__ == "__main__":
    main()
