"""`llmkit serve` (the server) and `llmkit query` (a one-shot client that waits for it)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

from llmkit.core.cli.commands import add_weights_arguments
from llmkit.core.device import add_device_argument, log_device, resolve_device
from llmkit.core.embeddings.download import DEFAULT_EMBEDDING_MODEL
from llmkit.core.errors import LlmkitError
from llmkit.core.models.store import DEFAULT_MODEL, canonical_name

from .image_options import add_image_options, image_limits_from


def register(cli) -> None:
    serve = cli.command("serve", help="serve a model over an OpenAI-compatible HTTP API")
    serve.add_argument("--model", "-m", default=DEFAULT_MODEL, help="catalog name, .gguf file or HF directory")
    serve.add_argument(
        "--served-model-name",
        nargs="+",
        metavar="NAME",
        help="one or more names clients may send as 'model' (default: the catalog name or the path's stem)",
    )
    serve.add_argument(
        "--embedding-model",
        default=DEFAULT_EMBEDDING_MODEL,
        help=f"model behind /v1/embeddings, loaded on its first request: {DEFAULT_EMBEDDING_MODEL} (default), "
        "a sentence-transformers BERT directory, or 'none'",
    )
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 to expose)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--api-key",
        default=os.environ.get("LLMKIT_API_KEY"),
        help="require 'Authorization: Bearer KEY' (env LLMKIT_API_KEY)",
    )
    add_weights_arguments(serve)
    add_device_argument(serve)
    serve.add_argument(
        "--chat-template", help="template name (chatml, llama3) or .jinja file instead of the model's own"
    )
    serve.add_argument(
        "--mmproj",
        metavar="FILE",
        help="llama.cpp's vision projector GGUF for a GGUF language model (-m): the pair serves images",
    )
    serve.add_argument(
        "--kv-cache-memory",
        default="0.1",
        help="KV cache budget: bytes with unit (2GiB) or fraction of free memory (default 0.1)",
    )
    serve.add_argument("--kv-cache-dtype", default="auto", choices=["auto", "fp8_e4m3", "int8", "int4"])
    serve.add_argument(
        "--tensor-parallel-size",
        type=int,
        default=1,
        help="split every layer over N ranks: this process and N-1 worker processes (gloo, CPU; default 1)",
    )
    serve.add_argument(
        "--tp-timeout",
        type=float,
        default=60.0,
        help="seconds a tensor-parallel collective may take before the server fails and exits (default 60)",
    )
    serve.add_argument("--block-size", type=int, default=16, help="tokens per KV block (default 16)")
    serve.add_argument("--max-num-seqs", type=int, default=64, help="sequences computed together (default 64)")
    serve.add_argument("--max-num-batched-tokens", type=int, default=2048, help="token budget per step (default 2048)")
    serve.add_argument("--no-prefix-caching", action="store_true", help="disable sharing of cached prompt blocks")
    serve.add_argument(
        "--speculative", choices=["ngram", "early_exit", "draft"], help="speculative decoding proposer (default off)"
    )
    serve.add_argument("--num-speculative-tokens", type=int, default=4, help="drafts per step (default 4)")
    serve.add_argument("--early-exit-layers", type=int, help="layers the early-exit drafter runs (default: a quarter)")
    serve.add_argument("--draft-model", help="draft model for --speculative draft (same tokenizer)")
    serve.add_argument("--max-waiting", type=int, default=256, help="queued sequences before 503 (default 256)")
    serve.add_argument("--max-body-bytes", type=int, default=4 * 2**20, help="largest request body (default 4 MiB)")
    serve.add_argument(
        "--body-timeout", type=float, default=30.0, help="seconds for a request body to arrive, else 408 (default 30)"
    )
    serve.add_argument(
        "--limit-concurrency",
        type=int,
        default=None,
        help="open connections before uvicorn answers 503 (default: no limit)",
    )
    serve.add_argument(
        "--guard",
        action="append",
        default=[],
        metavar="NAME[:key=value,...]",
        help="run a guard on every request (repeatable): pii, regex:pattern=..., schema:schema=FILE, "
        "prompt_injection, lm_policy:policy=FILE, or a plugin's (docs/safety.md)",
    )
    serve.add_argument("--guards-config", metavar="FILE", help="guards from a JSON or TOML file (docs/safety.md)")
    add_image_options(serve)
    roles = serve.add_argument_group("disaggregated serving")
    roles.add_argument(
        "--role",
        default="standalone",
        choices=["standalone", "replica", "prefill", "decode", "router"],
        help="standalone (default); a replica behind `llmkit router`; a prefill or decode worker, or the router "
        "in front of them",
    )
    roles.add_argument(
        "--kv-transfer-address",
        default="127.0.0.1:29600",
        help="HOST:PORT where the prefill and decode workers meet (torch.distributed TCP store)",
    )
    roles.add_argument("--kv-transfer-timeout", type=float, default=60.0, help="seconds a KV transfer may take")
    roles.add_argument("--prefill-url", default="http://127.0.0.1:8001", help="router: the prefill worker")
    roles.add_argument("--decode-url", default="http://127.0.0.1:8002", help="router: the decode worker")
    roles.add_argument(
        "--internal-secret",
        default=os.environ.get("LLMKIT_INTERNAL_SECRET"),
        help="required by the router and both workers: the secret they share (env LLMKIT_INTERNAL_SECRET)",
    )
    roles.add_argument(
        "--kv-hold-seconds", type=float, default=120.0, help="prefill: free blocks not sent within this (default 120)"
    )
    serve.set_defaults(func=run_serve)

    query = cli.command("query", help="send one chat message to a running llmkit server and stream the reply")
    query.add_argument("prompt")
    query.add_argument("--url", default="http://127.0.0.1:8000", help="server address (default http://127.0.0.1:8000)")
    query.add_argument(
        "--wait", type=float, default=300, help="seconds to wait for the server to come up (default 300)"
    )
    query.add_argument("--max-tokens", type=int, default=256)
    query.add_argument("--temperature", type=float, default=0.0)
    query.add_argument("--api-key", default=os.environ.get("LLMKIT_API_KEY"))
    query.set_defaults(func=run_query)


def speculative_config(args: argparse.Namespace):
    from ..speculative import SpeculativeConfig

    if args.speculative is None:
        return None
    return SpeculativeConfig(
        args.speculative,
        num_tokens=args.num_speculative_tokens,
        early_exit_layers=args.early_exit_layers,
        draft_model=args.draft_model,
    )


def embedding_model(source: str):
    from .embeddings import EmbeddingModel

    try:
        return EmbeddingModel(source)
    except ValueError as err:
        raise LlmkitError(str(err)) from None


def served_name(model: str) -> str:
    try:
        return canonical_name(model)
    except LlmkitError:
        return os.path.splitext(os.path.basename(os.path.normpath(model)))[0]


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from rich.console import Console

    from ..engine import Engine
    from ..parallel.group import torchrun_rank
    from .app import Server, create_app

    console = Console(stderr=True)
    if args.role not in ("standalone", "replica") and (args.guard or args.guards_config):
        raise LlmkitError("--guard and --guards-config work with --role standalone or replica only")
    if args.tensor_parallel_size != 1 and args.role not in ("standalone", "replica"):
        raise LlmkitError("--tensor-parallel-size works with --role standalone or replica only")
    if args.role != "standalone":
        from ..disaggregated.internal_auth import require_internal_secret

        require_internal_secret(args.internal_secret, args.role)  # refuse before loading anything
    if args.role == "router":
        from ..router.app import create_router
        from ..router.prefill_decode import PrefillDecodePolicy

        console.print(
            f"routing on http://{args.host}:{args.port}/v1: prefill {args.prefill_url}, decode {args.decode_url}"
        )
        uvicorn.run(
            create_router(
                PrefillDecodePolicy(args.prefill_url, args.decode_url),
                internal_secret=args.internal_secret,
                api_key=args.api_key,
            ),
            host=args.host,
            port=args.port,
            log_level="warning",
        )
        return 0
    from .guards import ServerGuards

    guards = ServerGuards.from_options(args.guard, args.guards_config)  # bad guard options fail before loading
    image_limits = image_limits_from(args)
    device = resolve_device(args.device)  # a device this machine cannot give fails here, before loading
    names = args.served_model_name or [served_name(args.model)]
    embeddings = None if args.embedding_model == "none" else embedding_model(args.embedding_model)
    if embeddings is not None and embeddings.name in names:
        raise LlmkitError(f"the embedding model is named {embeddings.name!r} too; pick another --served-model-name")
    log_device(device, args.device)
    load_options = dict(
        dtype=args.dtype,
        weights=args.weights,
        quantize=args.quantize,
        activations=args.activations,
        device=str(device),
        chat_template=args.chat_template,
    )
    if args.tensor_parallel_size != 1 and (torchrun_rank() or 0) > 0:  # torchrun: ranks 1..N-1 serve no HTTP
        return _serve_tensor_parallel_worker(args, load_options)
    with console.status(f"loading {args.model}"):
        model = _with_mmproj(args, load_options) if args.mmproj else args.model
        engine = Engine(
            model,
            **load_options,
            kv_cache_memory=args.kv_cache_memory,
            kv_cache_dtype=args.kv_cache_dtype,
            block_size=args.block_size,
            max_num_seqs=args.max_num_seqs,
            max_num_batched_tokens=args.max_num_batched_tokens,
            enable_prefix_caching=not args.no_prefix_caching,
            speculative=speculative_config(args),
            tensor_parallel_size=args.tensor_parallel_size,
            tensor_parallel_timeout=args.tp_timeout,
        )
    for line in engine.describe().splitlines():  # whole lines (device, kernels, weight formats): never wrapped
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    console.print(
        f"serving {', '.join(repr(n) for n in names)} on http://{args.host}:{args.port}/v1"
        + (f", embeddings {embeddings.name!r} (loaded on first use)" if embeddings else "")
        + (" (API key required)" if args.api_key else ""),
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    server = Server(
        engine, names, args.api_key, args.max_body_bytes, args.max_waiting, args.body_timeout, embeddings=embeddings
    )
    server.guards = guards
    server.image_limits = image_limits
    if guards is not None:
        console.print(f"guards: {guards.describe()}", soft_wrap=True, markup=False, highlight=False)
    if args.role in ("prefill", "decode"):
        from ..disaggregated.kv_transfer import KVTransport, fingerprint
        from ..disaggregated.workers import create_worker_app

        transport = KVTransport(
            args.role,
            args.kv_transfer_address,
            fingerprint(engine),
            args.kv_transfer_timeout,
            secret=args.internal_secret,
        )
        app = create_worker_app(server, args.role, transport, args.internal_secret, args.kv_hold_seconds)
        console.print(f"{args.role} worker: KV transfers through {args.kv_transfer_address}")
    elif args.role == "replica":
        from ..disaggregated.internal_auth import InternalOnly

        app = InternalOnly(create_app(server), args.internal_secret)
    else:
        app = create_app(server)
    if engine.tensor_parallel is None:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", limit_concurrency=args.limit_concurrency)
        return 0
    # Tensor parallel: a watcher shuts uvicorn down when a rank fails (a signal would be re-raised by uvicorn).
    http = uvicorn.Server(
        uvicorn.Config(
            app, host=args.host, port=args.port, log_level="warning", limit_concurrency=args.limit_concurrency
        )
    )
    watch = threading.Thread(target=_exit_when_a_rank_fails, args=(engine, http), name="llmkit-tp-watch", daemon=True)
    watch.start()
    try:
        http.run()
        failure = _tensor_parallel_failure(engine)
    finally:
        engine.close()
    if failure is not None:
        console.print(f"llmkit serve: stopped: {failure}", soft_wrap=True, markup=False, highlight=False)
        return 1
    return 0


def _with_mmproj(args: argparse.Namespace, load_options: dict):
    """`--mmproj`: the GGUF language model and its mmproj GGUF loaded as one vision-language model (the language
    model dense in --dtype, or as stored with --weights as-stored / --quantize / --activations)."""
    from llmkit.core.models.store import resolve
    from llmkit.core.models.vision.pretrained import load_vision_language

    if load_options["weights"] not in (None, "as-stored"):
        raise LlmkitError("--weights cannot be combined with --mmproj unless it is as-stored (dense: --dtype)")
    return load_vision_language(
        resolve(args.model),
        mmproj=args.mmproj,
        dtype=load_options["dtype"] or "float32",
        device=load_options["device"],
        chat_template=load_options["chat_template"],
        weights=load_options["weights"],
        quantize=load_options["quantize"],
        activations=load_options["activations"],
    )


def _tensor_parallel_failure(engine) -> str | None:
    """Why the server cannot go on: a failed collective, or a worker rank that ended."""
    if engine.fatal_error is not None:
        return str(engine.fatal_error)
    if engine.tensor_parallel is not None and engine.tensor_parallel.serving:
        return "; ".join(f"tensor-parallel {line}" for line in engine.tensor_parallel.ended()) or None
    return None


def _serve_tensor_parallel_worker(args: argparse.Namespace, load_options: dict) -> int:
    """A torchrun rank other than 0: load this rank's shard and run rank 0's steps until it stops."""
    from ..engine import EngineConfig
    from ..parallel.workers import serve_as_worker

    config = EngineConfig(
        block_size=args.block_size,
        kv_cache_dtype=args.kv_cache_dtype,
        speculative=speculative_config(args),
        tensor_parallel_size=args.tensor_parallel_size,
        tensor_parallel_timeout=args.tp_timeout,
    )
    return serve_as_worker(args.model, load_options, args.activations is None, config)


def _exit_when_a_rank_fails(engine, http) -> None:
    """Shut uvicorn down (gracefully) once a rank fails; run_serve then exits 1."""
    while _tensor_parallel_failure(engine) is None and not http.should_exit:
        time.sleep(0.2)
    http.should_exit = True


def _get(url: str, headers: dict[str, str], timeout: float = 5) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
        return json.loads(response.read())


def run_query(args: argparse.Namespace) -> int:
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    deadline = time.monotonic() + args.wait
    while True:
        try:
            model = _get(f"{args.url}/v1/models", headers)["data"][0]["id"]
            break
        except (urllib.error.URLError, ConnectionError, OSError) as err:
            if time.monotonic() > deadline:
                raise LlmkitError(f"no llmkit server answered at {args.url} within {args.wait:.0f}s ({err})") from None
            time.sleep(0.5)
    body = {
        "model": model,
        "messages": [{"role": "user", "content": args.prompt}],
        "stream": True,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
    }
    request = urllib.request.Request(f"{args.url}/v1/chat/completions", data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            for line in response:
                line = line.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise LlmkitError(chunk["error"]["message"])
                for choice in chunk["choices"]:
                    sys.stdout.write(choice["delta"].get("content") or "")
                    sys.stdout.flush()
    except urllib.error.HTTPError as err:
        raise LlmkitError(json.loads(err.read())["error"]["message"]) from None
    sys.stdout.write("\n")
    return 0
