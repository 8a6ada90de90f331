"""PPO on SmolLM2-135M-Instruct: two-digit addition rewarded by the `math_answer` verifier (GRPO's task).

    python benchmarks/train_ppo.py [--steps 10] [--prompts 16] [--out runs/bench-ppo]

The task and prompts are benchmarks/train_grpo.py's (two worked examples, then 'What is a + b?'; reward 1
when the text after the last '####' is the sum), on which the starting model is right about a quarter of
the time when sampling. Each step samples one completion for each of `--prompts` new problems from the
serving engine (sharing the policy's weights), scores it, and runs PPO: per-token KL penalty to the
reference (the policy with its LoRA adapters off), a value head on the policy's trunk (trained at its own
rate, `--value-lr`), GAE, whitened advantages, `--epochs` clipped updates over the batch. Logged per step: the mean reward, the KL to the
reference and the value head's explained variance. The sampled reward on 64 held-out problems (never
trained on) is measured before and after. Writes benchmarks/results/train/ppo.{png,json}.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from train_common import RESULTS, command_line, save_summary, write_jsonl
from train_grpo import training_and_held_out
from train_grpo_eval import sampled_reward

from llmkit.core import load_pretrained
from llmkit.train import train
from llmkit.train.plotting import plot_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--prompts", type=int, default=16, help="problems (= completions) per step")
    parser.add_argument("--epochs", type=int, default=2, help="PPO epochs over each step's batch")
    parser.add_argument("--top-layers", type=int, default=6)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--value-lr", type=float, default=1e-3, help="the value head's learning rate")
    parser.add_argument("--kl-coef", type=float, default=0.05)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--held-out-samples", type=int, default=4, help="sampled completions per held-out problem")
    parser.add_argument("--out", default="runs/bench-ppo")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    training, held_out = training_and_held_out()
    data = write_jsonl(out / "data" / "train.jsonl", training)
    before = sampled_reward(load_pretrained(), held_out, args.held_out_samples, args.max_new_tokens)
    result = train(
        "ppo",
        data=str(data),
        output_dir=str(out / "run"),
        max_steps=args.steps,
        batch_size=args.prompts,
        max_new_tokens=args.max_new_tokens,
        temperature=1.0,
        learning_rate=args.learning_rate,
        value_lr=args.value_lr,
        lr_scheduler="constant",
        kl_coef=args.kl_coef,
        num_ppo_epochs=args.epochs,
        num_mini_batches=1,
        lora_rank=16,
        lora_alpha=32,
        train_top_layers=args.top_layers,
        micro_batch_size=16,
        kv_cache_memory="512MiB",
        max_length=256,
        truncation="error",
        progress=False,
    )
    after = sampled_reward(
        load_pretrained(result.final_dir / "model"), held_out, args.held_out_samples, args.max_new_tokens
    )
    shutil.copy(result.output_dir / "metrics.jsonl", RESULTS / "ppo_metrics.jsonl")
    shutil.copy(result.output_dir / "completions.jsonl", RESULTS / "ppo_completions.jsonl")
    records = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    metrics = ["reward_mean", "kl", "value_explained_variance", "completion_length"]
    plot_runs([result.output_dir], metrics, RESULTS / "ppo.png", "PPO + LoRA, 2-digit addition (math_answer)")
    rewards = [r["reward_mean"] for r in records]
    half = max(1, len(rewards) // 2)
    save_summary(
        "ppo",
        {
            "command": command_line(),
            "value_lr": args.value_lr,
            "reward_curve": rewards,
            "kl_curve": [r["kl"] for r in records],
            "value_explained_variance_curve": [r["value_explained_variance"] for r in records],
            "value_loss_curve": [r["value_loss"] for r in records],
            "approx_kl_curve": [r["approx_kl"] for r in records],
            "clip_fraction_curve": [r["clip_fraction"] for r in records],
            f"reward_mean_first_{half}_steps": sum(rewards[:half]) / half,
            f"reward_mean_last_{half}_steps": sum(rewards[-half:]) / half,
            "held_out_completions": len(held_out) * args.held_out_samples,
            "held_out_sampled_reward_before": before[0],
            "held_out_sampled_reward_before_stderr": before[1],
            "held_out_sampled_reward_after": after[0],
            "held_out_sampled_reward_after_stderr": after[1],
            "mean_step_time_s": sum(r["step_time"] for r in records) / len(records),
            "mean_rollout_time_s": sum(r["rollout_time"] for r in records) / len(records),
            "mean_update_time_s": sum(r["update_time"] for r in records) / len(records),
        },
    )


if __name__ == "__main__":
    main()
