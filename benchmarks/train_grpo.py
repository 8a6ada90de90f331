"""GRPO (RLVR) on SmolLM2-135M-Instruct: two-digit addition rewarded by the `math_answer` verifier.

    python benchmarks/train_grpo.py [--steps 30] [--out runs/bench-grpo]

Each step samples 4 problems x 8 completions from the serving engine (sharing the policy's weights),
scores them with `math_answer` (the answer must follow '####'), and takes one LoRA update. The mean
verifier reward per step is the curve; the first steps are compared with the last. Writes
benchmarks/results/train/grpo.{png,json}.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

from train_common import RESULTS, save_summary, write_jsonl

from llmkit.train import train
from llmkit.train.plotting import plot_runs

QUESTION = "What is {a} + {b}? Reply with only the final answer in the form #### <number>."


def problems(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        prompt = [{"role": "user", "content": QUESTION.format(a=a, b=b)}]
        rows.append({"prompt": prompt, "reference": str(a + b), "verifier": "math_answer"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--prompts", type=int, default=4, help="problems per step")
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--top-layers", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--out", default="runs/bench-grpo")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    data = write_jsonl(out / "data" / "train.jsonl", problems(400, seed=0))
    result = train(
        "grpo",
        data=str(data),
        output_dir=str(out / "run"),
        max_steps=args.steps,
        batch_size=args.prompts,
        num_generations=args.generations,
        max_new_tokens=24,
        temperature=1.0,
        learning_rate=args.learning_rate,
        lr_scheduler="constant",
        beta=0.04,
        lora_rank=16,
        lora_alpha=32,
        train_top_layers=args.top_layers,
        micro_batch_size=16,
        kv_cache_memory="512MiB",
        max_length=256,
        truncation="error",
        save_merged=False,
        progress=False,
    )
    shutil.copy(result.output_dir / "metrics.jsonl", RESULTS / "grpo_metrics.jsonl")
    shutil.copy(result.output_dir / "completions.jsonl", RESULTS / "grpo_completions.jsonl")
    records = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    metrics = ["reward_mean", "loss", "kl", "completion_length"]
    plot_runs([result.output_dir], metrics, RESULTS / "grpo.png", "GRPO + LoRA, 2-digit addition (math_answer)")
    rewards = [r["reward_mean"] for r in records]
    window = max(1, len(rewards) // 5)
    save_summary(
        "grpo",
        {
            "command": f"python benchmarks/train_grpo.py --steps {args.steps}",
            "reward_step_1": rewards[0],
            f"reward_mean_first_{window}_steps": sum(rewards[:window]) / window,
            f"reward_mean_last_{window}_steps": sum(rewards[-window:]) / window,
            "reward_curve": rewards,
            "mean_rollout_time_s": sum(r["rollout_time"] for r in records) / len(records),
            "mean_update_time_s": sum(r["update_time"] for r in records) / len(records),
        },
    )


if __name__ == "__main__":
    main()
