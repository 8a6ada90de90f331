"""`llmkit interp lens|probe|steer`: the logit lens, truth probes per layer and a sentiment steering check."""

from __future__ import annotations

import argparse
import statistics
import sys

import torch
from rich.console import Console
from rich.table import Table

from ..device import add_device_argument, log_device, resolve_device
from ..errors import InvalidParameterError
from ..models.pretrained import Pretrained, load_pretrained
from ..models.store import DEFAULT_MODEL

# Piped output keeps whole rows instead of rich's 80-column ellipses (as core's other commands do).
console = Console(width=None if sys.stdout.isatty() else 240)


def register(cli) -> None:
    interp = cli.command("interp", help="look inside the model: logit lens, linear probes, steering vectors")
    sub = interp.add_subparsers(dest="interp_command", metavar="SUBCOMMAND", required=True)

    lens = sub.add_parser("lens", help="top next tokens decoded from every layer's residual stream")
    lens.add_argument("prompt")
    lens.add_argument("--top", type=int, default=5, help="tokens per layer (default 5)")
    lens.add_argument("--position", type=int, default=-1, help="prompt token to read (default -1, the last)")
    lens.add_argument("--chat", action="store_true", help="wrap the prompt in the chat template")
    _model_arguments(lens)
    lens.set_defaults(func=run_lens)

    probe = sub.add_parser("probe", help="truth probes per layer on the built-in true/false statements")
    probe.add_argument("--heldout", type=float, default=0.25, help="held-out fraction (default 0.25)")
    probe.add_argument("--seeds", type=int, default=5, help="splits averaged per layer (default 5)")
    probe.add_argument("--site", choices=["resid", "attn", "mlp"], default="resid")
    _model_arguments(probe)
    probe.set_defaults(func=run_probe)

    steer = sub.add_parser("steer", help="a sentiment direction added at a layer: positive words with and without")
    steer.add_argument("--layer", type=int, default=6, help="residual stream entering this layer (default 6)")
    steer.add_argument("--scales", default="-4,0,4", help="comma-separated multiples of the vector (default -4,0,4)")
    steer.add_argument("--max-tokens", type=int, default=40)
    steer.add_argument("--show", type=int, default=3, help="continuations printed per scale (default 3)")
    _model_arguments(steer)
    steer.set_defaults(func=run_steer)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", default=DEFAULT_MODEL, help="catalog name, .gguf file or HF directory")
    add_device_argument(parser)


def load(args: argparse.Namespace) -> Pretrained:
    """The model as core's reference generate holds it (GGUF weights as stored, float32 activations)."""
    device = resolve_device(args.device)
    log_device(device, args.device)
    with console.status(f"loading {args.model}", spinner="dots"):
        return load_pretrained(args.model, device=device)


def run_lens(args: argparse.Namespace) -> int:
    from .lens import top_tokens_per_layer

    if args.top < 1:
        raise InvalidParameterError("--top must be at least 1")
    pretrained = load(args)
    if args.chat and pretrained.chat_template is not None:
        ids = pretrained.chat_prompt([{"role": "user", "content": args.prompt}])
    else:
        ids = pretrained.tokenizer.encode(args.prompt, add_special_tokens=True)
    rows = top_tokens_per_layer(pretrained.model, pretrained.tokenizer, ids, args.top, args.position)
    token = pretrained.tokenizer.decode([ids[args.position]], skip_special_tokens=False)
    table = Table("layer", f"top {args.top} next tokens after {token!r} (probability)")
    for row in rows:
        label = "embed" if row.layer == 0 else str(row.layer)
        cells = "  ".join(f"{t!r} {p:.2f}" for t, p in zip(row.tokens, row.probabilities, strict=True))
        table.add_row(label, cells)
    console.print(table)
    return 0


def run_probe(args: argparse.Namespace) -> int:
    from .capture import capture_activations
    from .probes import train_probe
    from .statements import true_false_statements

    pretrained = load(args)
    model, tokenizer = pretrained.model, pretrained.tokenizer
    items = true_false_statements()
    prompts = [tokenizer.encode(s.text, add_special_tokens=True) for s in items]
    labels = torch.tensor([s.label for s in items], dtype=torch.long)
    pairs = [s.pair for s in items]
    with console.status(f"capturing {args.site} at the last token of {len(items)} statements", spinner="dots"):
        acts = capture_activations(model, prompts, sites=[args.site], positions="last")
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    table = Table("layer", "train acc", "held-out acc (mean of splits)", "min..max", "shuffled labels")
    for (layer, _), features in sorted(acts.items()):
        runs = [
            train_probe(features[:, 0], labels, heldout_fraction=args.heldout, seed=s, groups=pairs)
            for s in range(args.seeds)
        ]
        control = [
            train_probe(features[:, 0], shuffled, heldout_fraction=args.heldout, seed=s, groups=pairs)
            for s in range(args.seeds)
        ]
        heldout = [r.heldout_accuracy for r in runs]
        table.add_row(
            str(layer),
            f"{statistics.mean(r.train_accuracy for r in runs):.3f}",
            f"{statistics.mean(heldout):.3f}",
            f"{min(heldout):.2f}..{max(heldout):.2f}",
            f"{statistics.mean(r.heldout_accuracy for r in control):.3f}",
        )
    console.print(table)
    console.print(
        f"{len(items)} statements (80 capitals, 60 additions, 60 comparisons; half true), split by true/false "
        f"pair, {runs[0].num_heldout} held out per split, {args.seeds} splits"
    )
    return 0


def run_steer(args: argparse.Namespace) -> int:
    from .sentiment import NEUTRAL_PROMPTS, measure_sentiment, sentiment_direction

    try:
        scales = [float(s) for s in args.scales.split(",")]
    except ValueError:
        raise InvalidParameterError(f"--scales must be comma-separated numbers, not {args.scales!r}") from None
    pretrained = load(args)
    vector = sentiment_direction(pretrained.model, pretrained.tokenizer, args.layer)
    with console.status(f"{len(NEUTRAL_PROMPTS)} continuations at {len(scales)} scales", spinner="dots"):
        runs = measure_sentiment(pretrained.model, pretrained.tokenizer, vector, scales, args.max_tokens)
    table = Table(
        "scale", "positive words", "negative words", "pos / neg / all words", "continuations pos > neg / neg > pos"
    )
    for run in runs:
        table.add_row(
            f"{run.scale:g}",
            f"{run.positive_fraction:.2%}",
            f"{run.negative_fraction:.2%}",
            f"{run.positive_words} / {run.negative_words} / {run.total_words}",
            f"{run.positive_continuations} / {run.negative_continuations} of {len(run.continuations)}",
        )
    console.print(f"sentiment direction at layer {args.layer}: norm {float(vector.vector.norm()):.2f}")
    console.print(table)
    for run in runs:
        for prompt, text in list(zip(NEUTRAL_PROMPTS, run.continuations, strict=True))[: args.show]:
            console.print(f"[dim]scale {run.scale:g}[/dim] {prompt}[bold]{text!r}[/bold]", highlight=False)
    return 0
