"""`llmkit train sft|reward|dpo|ppo|grpo --config FILE.yaml [--option value ...]` and `llmkit train plot`."""

from __future__ import annotations

import argparse

from llmkit.core.device import log_device

from .config import CONFIG_CLASSES
from .config.loading import add_config_flags, flag_overrides, load_config

DESCRIPTIONS = {
    "sft": "supervised fine-tuning: causal LM loss on assistant turns or completions",
    "reward": "a Bradley-Terry reward model (scalar head) on preference pairs",
    "dpo": "direct preference optimization (sigmoid, IPO, hinge) against a frozen reference",
    "ppo": "PPO with engine rollouts, a value head, GAE and a KL penalty",
    "grpo": "GRPO / RLVR: group-relative advantages from verifier rewards",
}


def register(cli) -> None:
    parser = cli.command("train", "train a model: sft, reward, dpo, ppo, grpo; plot curves")
    methods = parser.add_subparsers(dest="train_method", metavar="METHOD")
    for name, config_class in CONFIG_CLASSES.items():
        sub = methods.add_parser(name, help=DESCRIPTIONS[name], description=DESCRIPTIONS[name])
        sub.add_argument("--config", metavar="FILE.yaml", help="YAML options (flags override them)")
        add_config_flags(sub, config_class)
        sub.set_defaults(func=lambda args, method=name: run_method(method, args))
    plot = methods.add_parser("plot", help="plot metrics of runs to a PNG", description="plot metrics of runs")
    plot.add_argument("runs", nargs="+", help="run directories (or metrics.jsonl files)")
    plot.add_argument("--metrics", default="loss", help="comma-separated metric names (default: loss)")
    plot.add_argument("--out", required=True, help="PNG file to write")
    plot.add_argument("--title", default="")
    plot.set_defaults(func=run_plot)
    parser.set_defaults(func=lambda args: parser.print_help())


def run_method(method: str, args: argparse.Namespace) -> int:
    from .api import train
    from .distributed import choose_device, local_rank

    config = load_config(CONFIG_CLASSES[method], args.config, flag_overrides(args, CONFIG_CLASSES[method]))
    log_device(choose_device(config.device, local_rank()), config.device)  # a device not there fails here
    result = train(method, config)
    print(f"{method}: {result.steps} steps; final model in {result.final_dir}")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from .plotting import plot_runs

    path = plot_runs(args.runs, [m.strip() for m in args.metrics.split(",") if m.strip()], args.out, args.title)
    print(f"wrote {path}")
    return 0
