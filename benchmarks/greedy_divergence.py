"""Where the engine's greedy ids leave core's float32 reference, and how close a call it was there: the
reference's two most likely tokens and their logprobs at the first differing position, per prompt (the
chat prompts of benchmarks/inference.py, 32 tokens each).

    python benchmarks/greedy_divergence.py [--activations int8] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch
from inference_workers import AGREEMENT_QUESTIONS

from llmkit.core import SamplingParams, generate, load_pretrained
from llmkit.serve import Engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--activations", default="int8", choices=["int8", "float32"])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reference = load_pretrained(args.model, dtype="float32", quiet=True)
    template, tokenizer = reference.chat_template, reference.tokenizer
    prompts = [tokenizer.encode(template.render([{"role": "user", "content": q}])) for q in AGREEMENT_QUESTIONS]
    params = SamplingParams(temperature=0, max_tokens=args.tokens, ignore_eos=True)
    expected = [o.completions[0].token_ids for o in generate(reference.model, tokenizer, prompts, params)]
    engine = Engine(load_pretrained(args.model, activations=args.activations, quiet=True))
    got = [o.completions[0].token_ids for o in engine.generate(prompts, params, progress=False)]
    top2 = SamplingParams(temperature=0, max_tokens=1, logprobs=True, top_logprobs=2)
    for question, prompt, want, have in zip(AGREEMENT_QUESTIONS, prompts, expected, got, strict=True):
        first = next((i for i, (a, b) in enumerate(zip(want, have, strict=True)) if a != b), None)
        if first is None:
            print(f"{question[:40]!r}: all {len(want)} tokens equal")
            continue
        [output] = generate(reference.model, tokenizer, [prompt + want[:first]], top2)
        (best, best_lp), (second, second_lp) = sorted(
            output.completions[0].top_logprobs[0].items(), key=lambda item: -item[1]
        )
        print(
            f"{question[:40]!r}: differs at token {first} (reference {want[first]}, engine {have[first]}); "
            f"reference top-2 {best}: {best_lp:.3f}, {second}: {second_lp:.3f}, margin {best_lp - second_lp:.3f}"
        )


if __name__ == "__main__":
    main()
