"""`llmkit router`: one OpenAI endpoint in front of several `llmkit serve --role replica` servers, or in
front of a prefill and a decode worker (`--prefill-url`/`--decode-url`)."""

from __future__ import annotations

import argparse
import os

from llmkit.core.errors import LlmkitError

from .strategies import STRATEGIES


def register(cli) -> None:
    router = cli.command("router", help="route OpenAI requests over llmkit servers (replicas or prefill/decode)")
    router.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="URL",
        help="a replica (`llmkit serve --role replica`), repeatable",
    )
    router.add_argument(
        "--policy", default="cache-aware", choices=STRATEGIES, help="how replicas are chosen (default cache-aware)"
    )
    router.add_argument("--prefill-url", help="disaggregated serving: the prefill worker (with --decode-url)")
    router.add_argument("--decode-url", help="disaggregated serving: the decode worker (with --prefill-url)")
    router.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 to expose)")
    router.add_argument("--port", type=int, default=8000)
    router.add_argument(
        "--api-key",
        default=os.environ.get("LLMKIT_API_KEY"),
        help="require 'Authorization: Bearer KEY' from clients (env LLMKIT_API_KEY); forwarded to backends",
    )
    router.add_argument(
        "--internal-secret",
        default=os.environ.get("LLMKIT_INTERNAL_SECRET"),
        help="the secret the router and its backends share (env LLMKIT_INTERNAL_SECRET)",
    )
    router.add_argument(
        "--cache-threshold",
        type=float,
        default=0.5,
        help="cache-aware: least share of a prompt's chunks a replica must hold to win it (default 0.5)",
    )
    router.add_argument(
        "--balance-slack",
        type=int,
        default=4,
        help="cache-aware: most extra requests in flight a cached replica may have over the least loaded (default 4)",
    )
    router.add_argument("--health-interval", type=float, default=2.0, help="seconds between health checks")
    router.add_argument(
        "--drain-seconds",
        type=float,
        default=30.0,
        help="on shutdown, how long requests in flight may take to finish (default 30)",
    )
    router.add_argument("--timeout", type=float, default=600.0, help="seconds a backend may take for one request")
    router.set_defaults(func=run_router)


def policy_from(args: argparse.Namespace):
    from .prefill_decode import PrefillDecodePolicy
    from .replicas import ReplicaPolicy

    pair = args.prefill_url or args.decode_url
    if pair and args.backend:
        raise LlmkitError("give either --backend URLs (replicas) or --prefill-url and --decode-url, not both")
    if pair:
        if not (args.prefill_url and args.decode_url):
            raise LlmkitError("disaggregated serving needs both --prefill-url and --decode-url")
        return PrefillDecodePolicy(args.prefill_url, args.decode_url)
    if not args.backend:
        raise LlmkitError("give the replicas with --backend URL (repeatable), or --prefill-url and --decode-url")
    if not 0.0 <= args.cache_threshold <= 1.0:
        raise LlmkitError(f"--cache-threshold must lie in [0, 1], got {args.cache_threshold}")
    if args.balance_slack < 0 or args.health_interval <= 0:
        raise LlmkitError("--balance-slack must be >= 0 and --health-interval > 0")
    try:
        return ReplicaPolicy(
            args.backend,
            strategy=args.policy,
            cache_threshold=args.cache_threshold,
            balance_slack=args.balance_slack,
            health_interval=args.health_interval,
        )
    except ValueError as err:
        raise LlmkitError(str(err)) from None


def run_router(args: argparse.Namespace) -> int:
    import uvicorn
    from rich.console import Console

    from ..disaggregated.internal_auth import require_internal_secret
    from .app import create_router

    require_internal_secret(args.internal_secret, "router")
    policy = policy_from(args)
    backends = ", ".join(args.backend) if args.backend else f"prefill {args.prefill_url}, decode {args.decode_url}"
    Console(stderr=True).print(
        f"routing on http://{args.host}:{args.port}/v1 ({'replicas, ' + args.policy if args.backend else 'disaggregated'}):"
        f" {backends}",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    app = create_router(policy, internal_secret=args.internal_secret, api_key=args.api_key, timeout=args.timeout)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=args.drain_seconds)
    return 0
