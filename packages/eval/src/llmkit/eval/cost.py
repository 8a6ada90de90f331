"""The practical arithmetic of running a workload: dollars from tokens and prices, seconds from TTFT and TPOT.

Prices are USD per million tokens: `input`, `cached_input` (prompt tokens served from a prefix
cache; defaults to `input`) and `output`. Latency of one request = TTFT + completion tokens x TPOT.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from llmkit.core.sampling import SamplingParams

from .errors import EvalError


@dataclasses.dataclass(frozen=True)
class Price:
    input: float
    output: float
    cached_input: float | None = None


@dataclasses.dataclass(frozen=True)
class Workload:
    requests: int
    prompt_tokens: float  # per request, on average
    completion_tokens: float
    cache_hit_rate: float = 0.0  # fraction of prompt tokens billed at the cached price

    def __post_init__(self) -> None:
        if self.requests < 0 or self.prompt_tokens < 0 or self.completion_tokens < 0:
            raise EvalError("requests and token counts must be >= 0")
        if not 0 <= self.cache_hit_rate <= 1:
            raise EvalError(f"cache hit rate must be in [0, 1], got {self.cache_hit_rate}")


def workload_cost(workload: Workload, price: Price) -> dict[str, float]:
    """Dollars for input (fresh and cached) and output tokens, and the total."""
    cached_price = price.input if price.cached_input is None else price.cached_input
    prompt = workload.requests * workload.prompt_tokens
    fresh, cached = prompt * (1 - workload.cache_hit_rate), prompt * workload.cache_hit_rate
    output = workload.requests * workload.completion_tokens
    costs = {
        "input": fresh * price.input / 1e6,
        "cached_input": cached * cached_price / 1e6,
        "output": output * price.output / 1e6,
    }
    costs["total"] = sum(costs.values())
    costs["per_request"] = costs["total"] / workload.requests if workload.requests else 0.0
    return costs


def workload_latency(workload: Workload, ttft_s: float, tpot_s: float, concurrency: int = 1) -> dict[str, float]:
    """Per-request latency, and wall time for all requests at `concurrency` (no batching speed-up assumed)."""
    per_request = ttft_s + workload.completion_tokens * tpot_s
    waves = -(-workload.requests // max(concurrency, 1))
    return {"ttft_s": ttft_s, "tpot_s": tpot_s, "request_s": per_request, "total_s": waves * per_request}


def load_price_table(path: str | Path) -> dict[str, Price]:
    """A YAML or JSON mapping `models: {name: {input, output, cached_input}}` (USD per million tokens)."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"no such price table: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise EvalError(f"{path}: not valid YAML/JSON: {err}") from None
    models = (data or {}).get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not models:
        raise EvalError(f"{path}: expected `models: {{NAME: {{input: ..., output: ...}}}}`")
    try:
        return {name: Price(**{k: float(v) for k, v in entry.items()}) for name, entry in models.items()}
    except (TypeError, ValueError, AttributeError) as err:
        raise EvalError(f"{path}: bad price entry ({err}); fields are input, output, cached_input") from None


def measure_latency(backend, prompt_tokens: int, completion_tokens: int, repeats: int = 3) -> tuple[float, float]:
    """(TTFT, TPOT) in seconds, medians over `repeats`: TTFT from a 1-token request, TPOT from the extra tokens."""
    if completion_tokens < 2:
        raise EvalError("measuring TPOT needs --completion-tokens >= 2")
    unit = "The quick brown fox jumps over the lazy dog. "
    ids = backend.tokenizer.encode(unit * (prompt_tokens // max(backend.count_tokens(unit), 1) + 1))[
        : max(prompt_tokens, 1)
    ]
    prompt: Any = ids if getattr(backend, "name", "") != "openai" else backend.tokenizer.decode(ids)

    def timed(max_tokens: int) -> float:
        params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True, seed=0)
        start = time.perf_counter()
        backend.generate([prompt], params)
        return time.perf_counter() - start

    timed(2)  # warm-up
    first = statistics.median(timed(1) for _ in range(repeats))
    whole = statistics.median(timed(completion_tokens) for _ in range(repeats))
    return first, max(whole - first, 0.0) / (completion_tokens - 1)


def add_cost_arguments(parser: argparse.ArgumentParser) -> None:
    from .cli.models import add_backend_arguments

    parser.add_argument(
        "--prices", help="price table (YAML/JSON: models: {NAME: {input, cached_input, output}}, USD per 1M tokens)"
    )
    parser.add_argument("--requests", type=int, default=1000, help="number of requests (default 1000)")
    parser.add_argument("--prompt-tokens", type=float, default=1000, help="prompt tokens per request (default 1000)")
    parser.add_argument(
        "--completion-tokens", type=float, default=200, help="completion tokens per request (default 200)"
    )
    parser.add_argument("--from-run", metavar="RUN", help="take requests and token counts from a run's results.json")
    parser.add_argument("--cache-hit-rate", type=float, default=0.0, help="fraction of prompt tokens served from cache")
    parser.add_argument("--ttft-ms", type=float, help="time to first token (ms), instead of measuring")
    parser.add_argument("--tpot-ms", type=float, help="time per output token (ms), instead of measuring")
    parser.add_argument("--measure", action="store_true", help="measure TTFT/TPOT on --backend/--model")
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight for the wall-time estimate")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--file", action="append", default=[], metavar="PDF", help="prompt tokens of each document strategy on --model"
    )
    parser.add_argument("--file-detail", choices=("auto", "low", "high"), default="auto", help="detail of the pages")
    parser.add_argument("--max-file-pages", type=int, default=32, help="pages per PDF (default 32)")
    add_backend_arguments(parser)


def run_cost(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    workload = _workload(args)
    report: dict[str, Any] = {"workload": dataclasses.asdict(workload), "costs": {}}
    if args.prices:
        for name, price in load_price_table(args.prices).items():
            report["costs"][name] = workload_cost(workload, price)
    ttft, tpot = (args.ttft_ms or 0) / 1000, (args.tpot_ms or 0) / 1000
    if args.measure:
        from .cli.models import open_model, parse_options

        backend, _ = open_model(args.backend, args.model, parse_options(args.backend_option), args.device)
        ttft, tpot = measure_latency(backend, int(workload.prompt_tokens), max(int(workload.completion_tokens), 2))
        report["measured_on"] = {"backend": args.backend, "model": args.model}
    if args.measure or args.ttft_ms is not None or args.tpot_ms is not None:
        report["latency"] = workload_latency(workload, ttft, tpot, args.concurrency)
    if args.file:
        from .document_cost import document_input_costs, document_strategy_tokens

        report["documents"] = document_strategy_tokens(args.model, args.file, args.file_detail, args.max_file_pages)
        if args.prices:
            report["document_costs"] = document_input_costs(report["documents"], load_price_table(args.prices))
    if not report["costs"] and "latency" not in report and not args.file:
        raise EvalError("nothing to compute: pass --prices, --measure, --ttft-ms/--tpot-ms or --file")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    console = Console()
    if args.file:
        table = Table(
            "document",
            "pages tokens",
            "text tokens",
            "both tokens",
            title=f"{args.model}, pages at detail {args.file_detail}",
        )
        for file, counts in report["documents"].items():
            table.add_row(file, *("-" if counts[s] is None else str(counts[s]) for s in ("pages", "text", "both")))
        console.print(table)
        for name, files in report.get("document_costs", {}).items():
            table = Table("document", "pages $", "text $", "both $", title=f"input cost of one read at {name}'s price")
            for file, costs in files.items():
                table.add_row(
                    file, *("-" if costs[s] is None else f"{costs[s]:.6f}" for s in ("pages", "text", "both"))
                )
            console.print(table)
    console.print(
        f"workload: {workload.requests} requests × {workload.prompt_tokens:g} prompt + {workload.completion_tokens:g} "
        f"completion tokens, cache hit rate {workload.cache_hit_rate:.0%}"
    )
    if report["costs"]:
        table = Table("model", "input $", "cached input $", "output $", "total $", "per request $")
        for name, c in report["costs"].items():
            table.add_row(
                name, *(f"{c[k]:.4f}" for k in ("input", "cached_input", "output", "total")), f"{c['per_request']:.6f}"
            )
        console.print(table)
    if "latency" in report:
        lat = report["latency"]
        console.print(
            f"TTFT {lat['ttft_s'] * 1000:.1f} ms, TPOT {lat['tpot_s'] * 1000:.2f} ms → {lat['request_s']:.2f} s per request, "
            f"{lat['total_s'] / 3600:.2f} h for the workload at concurrency {args.concurrency}"
        )
    return 0


def _workload(args: argparse.Namespace) -> Workload:
    if args.from_run:
        from .results import load_results

        usage = load_results(args.from_run).get("usage") or {}
        requests = max(int(usage.get("requests", 0)), 1)
        return Workload(
            requests,
            usage.get("prompt_tokens", 0) / requests,
            usage.get("completion_tokens", 0) / requests,
            args.cache_hit_rate,
        )
    return Workload(args.requests, args.prompt_tokens, args.completion_tokens, args.cache_hit_rate)
