"""Sampled verifier reward of the GRPO run's policy against the starting model, on held-out problems.

    python benchmarks/train_grpo_eval.py [--run runs/bench-grpo/run] [--samples 8]

The per-step reward of benchmarks/train_grpo.py is a mean over 16 completions (standard error near 0.12);
this samples `--samples` completions (temperature 1, as in training) for each of the 64 held-out problems
of that script, from the starting model and from the trained one (`RUN/final/model`). Writes
benchmarks/results/train/grpo_eval.json.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from train_common import command_line, save_summary
from train_grpo import training_and_held_out

from llmkit.core import SamplingParams, generate, load_pretrained
from llmkit.core.verifiers import get_verifier


def sampled_reward(pretrained, rows: list[dict], samples: int, max_new_tokens: int) -> tuple[float, float]:
    """Mean `math_answer` score over rows x samples completions, and its standard error."""
    verifier = get_verifier("math_answer")
    prompts = [pretrained.chat_prompt(r["prompt"]) for r in rows]
    params = SamplingParams(temperature=1.0, max_tokens=max_new_tokens, n=samples, seed=0)
    outputs = generate(pretrained.model, pretrained.tokenizer, prompts, params)
    scores = [
        verifier(r["prompt"][-1]["content"], completion.text, r["reference"]).score
        for r, out in zip(rows, outputs, strict=True)
        for completion in out.completions
    ]
    mean = sum(scores) / len(scores)
    return mean, math.sqrt(mean * (1 - mean) / len(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/bench-grpo/run")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    args = parser.parse_args()
    _, held_out = training_and_held_out()
    before = sampled_reward(load_pretrained(), held_out, args.samples, args.max_new_tokens)
    after = sampled_reward(
        load_pretrained(Path(args.run) / "final" / "model"), held_out, args.samples, args.max_new_tokens
    )
    save_summary(
        "grpo_eval",
        {
            "command": command_line(),
            "completions": len(held_out) * args.samples,
            "sampled_reward_before": before[0],
            "sampled_reward_before_stderr": before[1],
            "sampled_reward_after": after[0],
            "sampled_reward_after_stderr": after[1],
        },
    )


if __name__ == "__main__":
    main()
