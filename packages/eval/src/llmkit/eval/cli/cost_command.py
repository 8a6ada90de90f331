"""`llmkit cost`: cost and latency of a workload from token counts, a price table, cache hits and TTFT/TPOT."""

from __future__ import annotations


def register(cli) -> None:
    from ..cost import add_cost_arguments, run_cost

    parser = cli.command(
        "cost", help="cost and latency of a workload: tokens, a price table, cache hit rate, TTFT/TPOT"
    )
    add_cost_arguments(parser)
    parser.set_defaults(func=run_cost)
