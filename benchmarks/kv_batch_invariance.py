"""Does a sequence's greedy output depend on the other sequences in its batch? Per KV-cache dtype.

    python benchmarks/kv_batch_invariance.py [--dtypes auto int8] [--max-tokens 64] [--budget 2048] [--row-by-row]

The default model answers a 169-token prompt alone and as the third of six prompts (35-87 tokens
each); prints the first greedy token that differs and the largest logprob drift before it, with
prefix caching on and off. `--row-by-row` computes every `F.linear` one row at a time (batch-invariant
matmuls), which isolates what the cache itself does; `--budget` sets max_num_batched_tokens (small
budgets chunk the prompt inside the batch). `LLMKIT_KERNELS=reference` runs the torch references.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from llmkit.core import SamplingParams, load_pretrained
from llmkit.core.models.store import DEFAULT_MODEL, pull
from llmkit.serve.engine import Engine

SYSTEM = (
    "You are a careful assistant for a city library. Patrons ask questions about opening hours, "
    "borrowing rules, fines, events and the reading rooms. Opening hours are 9 to 8 on weekdays and "
    "10 to 4 on Saturdays; the library is closed on Sundays. Books may be borrowed for three weeks and "
    "renewed twice unless someone has reserved them. Late fines are 20 cents a day per item, capped at "
    "5 euros. The quiet reading room is on the third floor; group study rooms can be booked online up to "
    "a week ahead. Children's story time is every Wednesday at 4pm. "
)
QUESTION = (
    "Write a detailed paragraph describing everything a new member should know before their first visit, "
    "please, thanks so much for it today."
)
OTHERS = [
    "What is the capital of France?",
    "Write a haiku about rain. " * 3,
    "Explain photosynthesis in detail, step by step. " * 6,
    "Name a famous painter.",
    "List ten animals that live in the ocean and describe each one briefly. " * 4,
]


def row_by_row(linear):
    def apply(x, weight, bias=None):
        if x.dim() == 2 and x.shape[0] > 1:
            return torch.cat([linear(x[i : i + 1], weight, bias) for i in range(x.shape[0])])
        return linear(x, weight, bias)

    return apply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", nargs="+", default=["auto", "int8"])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--budget", type=int, default=2048)
    parser.add_argument("--row-by-row", action="store_true")
    args = parser.parse_args()
    if args.row_by_row:
        F.linear = row_by_row(F.linear)
    pretrained = load_pretrained(pull(DEFAULT_MODEL, quiet=True).path)
    target = pretrained.chat_prompt([{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}])
    others = [pretrained.chat_prompt([{"role": "user", "content": text}]) for text in OTHERS]
    print(f"target prompt: {len(target)} tokens; others: {[len(o) for o in others]}")
    params = SamplingParams(temperature=0, max_tokens=args.max_tokens, ignore_eos=True, logprobs=True)
    for dtype in args.dtypes:
        for prefix_caching in (True, False):

            def engine(dtype=dtype, prefix_caching=prefix_caching) -> Engine:
                return Engine(
                    pretrained,
                    num_blocks=256,
                    kv_cache_dtype=dtype,
                    enable_prefix_caching=prefix_caching,
                    max_num_batched_tokens=args.budget,
                )

            alone = engine().generate([target], params, progress=False)[0].completions[0]
            batch = engine().generate([*others[:2], target, *others[2:]], params, progress=False)[2].completions[0]
            pairs = zip(alone.token_ids, batch.token_ids, strict=True)
            first = next((i for i, (a, b) in enumerate(pairs) if a != b), None)
            upto = args.max_tokens if first is None else first
            drift = max(
                (abs(a - b) for a, b in zip(alone.logprobs[:upto], batch.logprobs[:upto], strict=True)), default=0.0
            )
            print(
                f"{dtype:9s} prefix caching {'on ' if prefix_caching else 'off'}: first differing token "
                f"{'none' if first is None else first}, max logprob drift before it {drift:.2e}"
            )


if __name__ == "__main__":
    main()
