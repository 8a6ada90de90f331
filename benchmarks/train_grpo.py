"""GRPO (RLVR) on SmolLM2-135M-Instruct: two-digit addition rewarded by the `math_answer` verifier.

    python benchmarks/train_grpo.py [--steps 20] [--out runs/bench-grpo]

Each step samples 2 new problems x 8 completions from the serving engine (sharing the policy's weights),
scores them with `math_answer` (the answer must follow '####'), and takes one LoRA update on the top
layers (beta 0 by default: no reference forward, as TRL's default). The mean verifier reward per step is
the curve (every step's problems are new, so it is measured on unseen prompts); the first steps are
compared with the last, and greedy accuracy on 64 held-out problems is measured before and after. Writes
benchmarks/results/train/grpo.{png,json}.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

from train_common import RESULTS, command_line, save_summary, write_jsonl

from llmkit.core import SamplingParams, generate, load_pretrained
from llmkit.core.verifiers import get_verifier
from llmkit.train import train
from llmkit.train.plotting import plot_runs

QUESTION = "What is {a} + {b}?"
# Two worked examples in the conversation show the answer format: without them SmolLM2-135M never writes
# '#### <number>' (none of 64 sampled replies in a pilot), every group's reward is 0 and GRPO has nothing to learn.
SHOTS = [
    {"role": "user", "content": "What is 12 + 35?"},
    {"role": "assistant", "content": "12 + 35 = 47\n#### 47"},
    {"role": "user", "content": "What is 58 + 26?"},
    {"role": "assistant", "content": "58 + 26 = 84\n#### 84"},
]


def problems(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        prompt = [*SHOTS, {"role": "user", "content": QUESTION.format(a=a, b=b)}]
        rows.append({"prompt": prompt, "reference": str(a + b), "verifier": "math_answer"})
    return rows


def training_and_held_out() -> tuple[list[dict], list[dict]]:
    """The 400 training problems and 64 held-out ones that none of them repeats (shared by the RL benchmarks)."""
    training = problems(400, seed=0)
    seen = {r["prompt"][-1]["content"] for r in training}
    return training, [r for r in problems(100, seed=1) if r["prompt"][-1]["content"] not in seen][:64]


def greedy_reward(pretrained, rows: list[dict], max_new_tokens: int) -> float:
    """Mean `math_answer` score of greedy replies."""
    verifier = get_verifier("math_answer")
    prompts = [pretrained.chat_prompt(r["prompt"]) for r in rows]
    outputs = generate(
        pretrained.model, pretrained.tokenizer, prompts, SamplingParams(temperature=0, max_tokens=max_new_tokens)
    )
    scores = [
        verifier(r["prompt"][-1]["content"], out.completions[0].text, r["reference"]).score
        for r, out in zip(rows, outputs, strict=True)
    ]
    return sum(scores) / len(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--prompts", type=int, default=2, help="problems per step")
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--top-layers", type=int, default=6)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--beta", type=float, default=0.0, help="k3 KL weight (0 skips the reference forward)")
    parser.add_argument(
        "--max-new-tokens", type=int, default=24, help="'90 + 74 = 164\\n#### 164' and its end-of-turn token are 18"
    )
    parser.add_argument("--out", default="runs/bench-grpo")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    training, held_out = training_and_held_out()
    data = write_jsonl(out / "data" / "train.jsonl", training)
    before = greedy_reward(load_pretrained(), held_out, args.max_new_tokens)
    result = train(
        "grpo",
        data=str(data),
        output_dir=str(out / "run"),
        max_steps=args.steps,
        batch_size=args.prompts,
        num_generations=args.generations,
        max_new_tokens=args.max_new_tokens,
        temperature=1.0,
        learning_rate=args.learning_rate,
        lr_scheduler="constant",
        beta=args.beta,
        lora_rank=16,
        lora_alpha=32,
        train_top_layers=args.top_layers,
        micro_batch_size=16,
        kv_cache_memory="512MiB",
        max_length=256,
        truncation="error",
        progress=False,
    )
    after = greedy_reward(load_pretrained(result.final_dir / "model"), held_out, args.max_new_tokens)
    shutil.copy(result.output_dir / "metrics.jsonl", RESULTS / "grpo_metrics.jsonl")
    shutil.copy(result.output_dir / "completions.jsonl", RESULTS / "grpo_completions.jsonl")
    records = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    metrics = ["reward_mean", "verifier_math_answer", "zero_std_fraction", "completion_length"]
    metrics += ["kl"] if args.beta else []
    plot_runs([result.output_dir], metrics, RESULTS / "grpo.png", "GRPO + LoRA, 2-digit addition (math_answer)")
    rewards = [r["reward_mean"] for r in records]
    window = max(1, len(rewards) // 5)
    save_summary(
        "grpo",
        {
            "command": command_line(),
            "reward_step_1": rewards[0],
            f"reward_mean_first_{window}_steps": sum(rewards[:window]) / window,
            f"reward_mean_last_{window}_steps": sum(rewards[-window:]) / window,
            "reward_curve": rewards,
            "held_out_greedy_reward_before": before,
            "held_out_greedy_reward_after": after,
            "mean_rollout_time_s": sum(r["rollout_time"] for r in records) / len(records),
            "mean_update_time_s": sum(r["update_time"] for r in records) / len(records),
        },
    )


if __name__ == "__main__":
    main()
