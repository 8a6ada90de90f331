"""Can PPO's value head learn on SmolLM2-135M? A reward it can see, at several value-head learning rates.

    python benchmarks/train_ppo_value_head.py [--value-lr 5e-4 1e-3] [--steps 6]

The same 16 raw-text prompts every step, half 'Tell me about cats N:' (reward 1 whatever the completion),
half 'Give me a number N:' (reward 0): the return is readable from the prompt's first tokens on, so a
working value head's explained variance (measured each step on fresh rollouts, before that step's
updates) climbs towards 1. Everything else is benchmarks/train_ppo.py's setting (LoRA r=16 on the top 6
layers at lr 5e-4, KL coef 0.05, 2 PPO epochs of one update) with 6 new tokens. One run per `--value-lr`;
writes benchmarks/results/train/ppo_value_head.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from train_common import command_line, save_summary

from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, unregister_plugin
from llmkit.core.verifiers import VerifierResult
from llmkit.train.config import PPOConfig, load_config
from llmkit.train.loop import Trainer
from llmkit.train.methods import PPOMethod

KINDS = ("Tell me about cats", "Give me a number")


def asks_about_cats(prompt, completion, reference):
    return VerifierResult.from_bool("cats" in str(prompt))


class CatsVerifier:
    @hookimpl
    def llmkit_register_verifiers(self, register):
        register("asks_about_cats", asks_about_cats)


def explained_variance_curve(work: Path, value_lr: float, steps: int, learning_rate: float) -> list[dict]:
    data = work / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{KINDS[i % 2]} {i}:"}) + "\n" for i in range(16)))
    options = {
        "data": str(data), "output_dir": str(work / f"run-{value_lr}"), "progress": False, "max_length": 128,
        "lora_rank": 16, "lora_alpha": 32, "train_top_layers": 6, "learning_rate": learning_rate,
        "value_lr": value_lr, "lr_scheduler": "constant", "kl_coef": 0.05, "batch_size": 16, "max_new_tokens": 6,
        "kv_cache_memory": "256MiB", "micro_batch_size": 16, "verifiers": {"asks_about_cats": 1.0},
        "num_ppo_epochs": 2, "num_mini_batches": 1, "max_steps": steps,
    }  # fmt: skip
    trainer = Trainer(PPOMethod, load_config(PPOConfig, None, options))
    curve = []
    for step in range(steps):
        record, _ = trainer._step(step)
        curve.append({k: record[k] for k in ("value_explained_variance", "value_loss", "reward_mean", "step_time")})
        print(f"value_lr {value_lr:g} step {step + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in curve[-1].items()))
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--value-lr", type=float, nargs="+", default=[5e-4, 1e-3])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--learning-rate", type=float, default=5e-4, help="the policy's (LoRA) learning rate")
    args = parser.parse_args()
    register_plugin(CatsVerifier(), "benchmark-cats-verifier")
    work = Path(tempfile.mkdtemp(prefix="ppo-value-head-"))
    try:
        runs = {f"{v:g}": explained_variance_curve(work, v, args.steps, args.learning_rate) for v in args.value_lr}
    finally:
        unregister_plugin("benchmark-cats-verifier")
        shutil.rmtree(work, ignore_errors=True)
    save_summary(
        "ppo_value_head",
        {
            "command": command_line(),
            "learning_rate": args.learning_rate,
            "value_explained_variance_curves": {v: [r["value_explained_variance"] for r in c] for v, c in runs.items()},
            "value_loss_curves": {v: [r["value_loss"] for r in c] for v, c in runs.items()},
            "mean_step_time_s": {v: sum(r["step_time"] for r in c) / len(c) for v, c in runs.items()},
        },
    )


if __name__ == "__main__":
    main()
