"""DPO on real preference pairs: BIG-bench hhh_alignment, SmolLM2-135M-Instruct with LoRA.

    python benchmarks/train_dpo.py [--steps 20] [--top-layers 8] [--out runs/bench-dpo]

Same split as benchmarks/train_reward.py. Reference log-probs are precomputed once into a validated cache.
Reports the chosen-minus-rejected implicit-reward margin and the held-out preference accuracy (ties count
half, so the untrained policy sits at 0.5) before and after. Writes benchmarks/results/train/dpo.{png,json}.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from train_common import RESULTS, command_line, hhh_pairs, longer_is_chosen, save_summary, write_jsonl

from llmkit.train import train
from llmkit.train.plotting import plot_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top-layers", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--eval-steps", type=int, default=0, help="default: steps // 2")
    parser.add_argument("--out", default="runs/bench-dpo")
    parser.add_argument("--cache", default="runs/bigbench")
    args = parser.parse_args()
    out, cache = Path(args.out), Path(args.cache)
    shutil.rmtree(out, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    train_pairs, held_out = hhh_pairs(cache)
    data = write_jsonl(out / "data" / "train.jsonl", train_pairs)
    held = write_jsonl(out / "data" / "held_out.jsonl", held_out)
    result = train(
        "dpo",
        data=str(data),
        eval_data=str(held),
        output_dir=str(out / "run"),
        reference_cache=str(out / "reference_logps.safetensors"),
        max_steps=args.steps,
        batch_size=8,
        learning_rate=args.learning_rate,
        beta=args.beta,
        warmup_steps=3,
        lora_rank=16,
        lora_alpha=32,
        train_top_layers=args.top_layers,
        max_length=args.max_length,
        truncation="truncate",
        eval_steps=args.eval_steps or args.steps // 2,
        save_merged=False,
        progress=False,
    )
    shutil.copy(result.output_dir / "metrics.jsonl", RESULTS / "dpo_metrics.jsonl")
    records = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    metrics = ["loss", "reward_margin", "eval_reward_margin", "eval_accuracy"]
    plot_runs([result.output_dir], metrics, RESULTS / "dpo.png", "DPO + LoRA, hhh_alignment")
    evals = [r for r in records if "eval_accuracy" in r]
    steps = [r for r in records if "loss" in r]
    save_summary(
        "dpo",
        {
            "command": command_line(),
            "data": f"BIG-bench hhh_alignment (bigbench==1.0.0 sdist), {len(train_pairs)} train / {len(held_out)} held-out "
            "pairs, split by prompt",
            "held_out_longer_reply_baseline": longer_is_chosen(held_out),
            "train_margin_first_step": steps[0]["reward_margin"],
            "train_margin_last_step": steps[-1]["reward_margin"],
            "held_out_margin_before": evals[0]["eval_reward_margin"],
            "held_out_margin_after": evals[-1]["eval_reward_margin"],
            "held_out_accuracy_before": evals[0]["eval_accuracy"],
            "held_out_accuracy_after": evals[-1]["eval_accuracy"],
            "held_out_curve": [(r["step"], r["eval_accuracy"], r["eval_reward_margin"]) for r in evals],
        },
    )


if __name__ == "__main__":
    main()
