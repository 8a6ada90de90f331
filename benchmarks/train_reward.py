"""Reward model on real preference pairs: BIG-bench hhh_alignment, SmolLM2-135M-Instruct backbone.

    python benchmarks/train_reward.py [--steps 40] [--top-layers 6] [--out runs/bench-reward]

221 pairs (harmless/helpful/honest/other); whole prompts holding 25% of each subset's pairs are held out
(seeded), so no held-out prompt is trained on. The backbone's last
`--top-layers` decoder layers and the scalar head train (full weights); held-out preference accuracy is
measured before training and at the end. Writes benchmarks/results/train/reward.{png,json}.
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
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--top-layers", type=int, default=6)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--eval-steps", type=int, default=0, help="default: steps // 2")
    parser.add_argument("--out", default="runs/bench-reward")
    parser.add_argument("--cache", default="runs/bigbench")
    args = parser.parse_args()
    out, cache = Path(args.out), Path(args.cache)
    shutil.rmtree(out, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    train_pairs, held_out = hhh_pairs(cache)
    data = write_jsonl(out / "data" / "train.jsonl", train_pairs)
    held = write_jsonl(out / "data" / "held_out.jsonl", held_out)
    result = train(
        "reward",
        data=str(data),
        eval_data=str(held),
        output_dir=str(out / "run"),
        max_steps=args.steps,
        batch_size=8,
        learning_rate=args.learning_rate,
        warmup_steps=3,
        train_top_layers=args.top_layers,
        max_length=args.max_length,
        truncation="truncate",
        eval_steps=args.eval_steps or args.steps // 2,
        progress=False,
    )
    shutil.copy(result.output_dir / "metrics.jsonl", RESULTS / "reward_metrics.jsonl")
    records = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    plot_runs(
        [result.output_dir],
        ["loss", "accuracy", "eval_accuracy"],
        RESULTS / "reward.png",
        "Reward model, hhh_alignment",
    )
    evals = [r for r in records if "eval_accuracy" in r]
    save_summary(
        "reward",
        {
            "command": command_line(),
            "data": f"BIG-bench hhh_alignment (bigbench==1.0.0 sdist), {len(train_pairs)} train / {len(held_out)} held-out "
            "pairs, split by prompt",
            "held_out_longer_reply_baseline": longer_is_chosen(held_out),
            "held_out_accuracy_before": evals[0]["eval_accuracy"],
            "held_out_accuracy_after": evals[-1]["eval_accuracy"],
            "held_out_accuracy_curve": [(r["step"], r["eval_accuracy"]) for r in evals],
            "train_loss_first": records[1]["loss"],
            "train_loss_last": records[-1]["loss"],
        },
    )


if __name__ == "__main__":
    main()
