"""Serving throughput and latency: `llmkit serve` next to llama.cpp's `llama-server`, like for like.

    python benchmarks/serve.py [--requests 128] [--seed 0] [--concurrency 64] [--threads 2]
        [--llama-server /work/peers/llama-server-build/bin/llama-server] [--skip PEER ...] [--replicas N]

Workload: N requests arriving together, prompt and output lengths drawn from a ShareGPT-like
lognormal (scaled for a 2-core CPU), text windows from this repository's docs, greedy decoding
with a fixed number of output tokens (EOS ignored) so every engine does the same work.

The comparison that counts: `llmkit serve` and `llama-server` each run as a process on loopback with
the same GGUF, the same threads, the same number of concurrent sequences (--concurrency: the engine's
--max-num-seqs, llama-server's -np slots, unified KV), the same KV capacity (concurrency x 1024 tokens)
and prompt caching off on both; one streaming client sends the same OpenAI `/v1/completions` requests
(token-id prompts) to both and checks the completion lengths each reports. Both get one warm-up request.
Peak RSS is the server process's VmHWM. In-process rows for reference: the Engine driven directly (HTTP
overhead = the difference), HF transformers `generate` with static padded batches, core's sequential
`generate()`. Also prints KV waste (paged vs contiguous reservation) and a shared-system-prompt workload
with and without prefix caching. `--replicas N` adds a row for `llmkit router` (least-loaded) in front of
N `llmkit serve --role replica` processes, each with concurrency/N sequences and threads/N threads, so the
machine's cores and the total sequences stay the same; its peak RSS sums every process.

Getting llama-server (kept outside the repository): build it from the llama.cpp that
llama-cpp-python 0.3.36 vendors (or from github.com/ggml-org/llama.cpp), CPU only, no UI, no curl:

    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /work/peers/src
    tar xzf /work/peers/src/llama_cpp_python-0.3.36.tar.gz -C /work/peers/src
    cmake -S /work/peers/src/llama_cpp_python-0.3.36/vendor/llama.cpp -B /work/peers/llama-server-build \\
        -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF \\
        -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
    cmake --build /work/peers/llama-server-build --target llama-server -j2
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from serve_http import (
    find_llama_server,
    free_port,
    llama_server_command,
    llmkit_command,
    peak_rss_bytes,
    server_process,
    stream_all,
    warm_up,
)

from llmkit.core import SamplingParams, load_pretrained, stream_generate
from llmkit.serve.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
console = Console(width=max(Console().width, 160))  # wide tables; do not squeeze them in a pipe


def corpus_ids(tokenizer) -> list[int]:
    text = "\n\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))) + (ROOT / "README.md").read_text()
    return tokenizer.encode(text * 4)


def workload(tokenizer, count: int, seed: int) -> list[tuple[list[int], int]]:
    """(prompt ids, output length) pairs: lognormal lengths like ShareGPT's, scaled down ~4x."""
    rng = np.random.default_rng(seed)
    ids = corpus_ids(tokenizer)
    prompts = np.clip(rng.lognormal(np.log(96), 0.8, count), 16, 768).astype(int)
    outputs = np.clip(rng.lognormal(np.log(48), 0.7, count), 8, 256).astype(int)
    jobs = []
    for length, out in zip(prompts, outputs, strict=True):
        start = int(rng.integers(0, len(ids) - length))
        jobs.append((ids[start : start + length], int(out)))
    return jobs


class Recorder:
    """Per-request first-token and finish times; summary metrics at the end."""

    def __init__(self, jobs):
        self.jobs, self.start = jobs, time.perf_counter()
        self.first: dict[int, float] = {}
        self.done: dict[int, float] = {}

    def token(self, i: int, finished: bool) -> None:
        now = time.perf_counter() - self.start
        self.first.setdefault(i, now)
        if finished:
            self.done[i] = now

    def summary(self) -> dict[str, float]:
        elapsed = max(self.done.values())
        outputs = sum(out for _, out in self.jobs)
        ttft = [self.first[i] for i in range(len(self.jobs))]
        tpot = [(self.done[i] - self.first[i]) / (out - 1) for i, (_, out) in enumerate(self.jobs) if out > 1]
        return {
            "requests/s": len(self.jobs) / elapsed,
            "output tok/s": outputs / elapsed,
            "TTFT p50 (s)": float(np.percentile(ttft, 50)),
            "TTFT p99 (s)": float(np.percentile(ttft, 99)),
            "TPOT p50 (ms)": 1000 * statistics.median(tpot),
            "wall (s)": elapsed,
        }


def run_engine(smol, jobs, slots: int, kv_bytes: int) -> tuple[dict, dict]:
    engine = Engine(smol, kv_cache_memory=kv_bytes, max_num_seqs=slots, enable_prefix_caching=False)
    recorder = Recorder(jobs)
    index = {
        engine.add_request(p, SamplingParams(temperature=0, max_tokens=out, ignore_eos=True)): i
        for i, (p, out) in enumerate(jobs)
    }
    waste_paged, waste_job, waste_full = [], [], []
    context = engine.context_length
    while engine.has_unfinished():
        running = engine.scheduler.running
        if running:
            size = engine.config.block_size
            waste_paged.append(sum(len(s.block_table) * size - s.num_computed_tokens for s in running) / len(running))
            waste_job.append(
                sum(len(s.prompt_token_ids) + s.output.max_new_tokens - s.num_computed_tokens for s in running)
                / len(running)
            )
            waste_full.append(sum(context - s.num_computed_tokens for s in running) / len(running))
        for output in engine.step():
            recorder.token(index[output.request_id], output.finished)
    kv = {
        "paged": statistics.mean(waste_paged),
        "contiguous, prompt+max_tokens": statistics.mean(waste_job),
        "contiguous, full context": statistics.mean(waste_full),
        "block_size": engine.config.block_size,
    }
    return recorder.summary(), kv


def run_sequential(smol, jobs) -> dict:
    recorder = Recorder(jobs)
    for i, (prompt, out) in enumerate(jobs):
        for event in stream_generate(
            smol.model, smol.tokenizer, [prompt], SamplingParams(temperature=0, max_tokens=out, ignore_eos=True)
        ):
            recorder.token(i, event.finish_reason is not None)
    return recorder.summary()


def run_transformers(smol, jobs, batch_size: int) -> dict | None:
    try:
        import transformers
    except ImportError:
        return None
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(smol.path.parent), gguf_file=smol.path.name, dtype=torch.float32
    ).eval()
    pad = smol.tokenizer.pad_token_id if smol.tokenizer.pad_token_id is not None else 0
    recorder = Recorder(jobs)

    class Clock(transformers.LogitsProcessor):
        def __init__(self, members):
            self.members, self.step = members, 0

        def __call__(self, input_ids, scores):
            self.step += 1
            for i in self.members:
                if self.step <= jobs[i][1]:
                    recorder.token(i, self.step == jobs[i][1])
            return scores

    for start in range(0, len(jobs), batch_size):
        members = list(range(start, min(start + batch_size, len(jobs))))
        width = max(len(jobs[i][0]) for i in members)
        ids = torch.full((len(members), width), pad)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(members):
            prompt = jobs[i][0]
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        steps = max(jobs[i][1] for i in members)
        with torch.inference_mode():
            model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=steps,
                min_new_tokens=steps,
                do_sample=False,
                pad_token_id=pad,
                logits_processor=transformers.LogitsProcessorList([Clock(members)]),
            )
    return recorder.summary()


def run_over_http(command_env, smol, jobs) -> dict:
    """Serve from a subprocess, stream every job to it at once; the summary plus the server's peak RSS."""
    command, env = command_env
    with server_process(command, env) as (url, pid):
        extra = {"cache_prompt": False} if "llama-server" in Path(command[0]).name else {}
        warm_up(url, jobs[0][0][:32], extra)
        recorder = Recorder(jobs)
        stream_all(url, jobs, recorder, extra)
        return recorder.summary() | {"peak RSS (MB)": peak_rss_bytes(pid) / 1e6}


def run_replicas(smol, jobs, args, kv_bytes: int) -> dict:
    """`llmkit router` over `args.replicas` replicas sharing the machine; the summary plus every process's peak RSS."""
    secret = {"LLMKIT_INTERNAL_SECRET": secrets.token_hex(16)}
    n = args.replicas
    with contextlib.ExitStack() as stack:
        urls, pids = [], []
        for _ in range(n):
            command, env = llmkit_command(
                smol.path, free_port(), max(1, args.concurrency // n), kv_bytes // n, args.llmkit_weights,
                max(1, args.threads // n),
            )  # fmt: skip
            url, pid = stack.enter_context(server_process([*command, "--role", "replica"], env | secret))
            urls.append(url)
            pids.append(pid)
        router = [str(Path(sys.executable).with_name("llmkit")), "router", "--port", str(free_port())]
        router += ["--policy", "least-loaded", *(part for url in urls for part in ("--backend", url))]
        url, pid = stack.enter_context(server_process(router, secret))
        warm_up(url, jobs[0][0][:32], {})
        recorder = Recorder(jobs)
        stream_all(url, jobs, recorder, {})
        return recorder.summary() | {"peak RSS (MB)": sum(peak_rss_bytes(p) for p in [*pids, pid]) / 1e6}


def prefix_workload(smol, caching: bool, count: int = 64) -> dict:
    ids = corpus_ids(smol.tokenizer)
    shared = ids[:1000]
    questions = [ids[2000 + 37 * i : 2000 + 37 * i + 20] for i in range(count)]
    engine = Engine(smol, kv_cache_memory="2GiB", max_num_seqs=64, enable_prefix_caching=caching)
    jobs = [(shared + q, 16) for q in questions]
    recorder = Recorder(jobs)
    index = {
        engine.add_request(p, SamplingParams(temperature=0, max_tokens=out, ignore_eos=True)): i
        for i, (p, out) in enumerate(jobs)
    }
    while engine.has_unfinished():
        for output in engine.step():
            recorder.token(index[output.request_id], output.finished)
    shareable = (len(shared) // engine.config.block_size) * (count - 1)
    stats = engine.stats()
    summary = recorder.summary()
    return {
        "hit blocks / shareable": stats.prefix_cache_hit_blocks / shareable,
        "TTFT mean (s)": statistics.mean(recorder.first.values()),
        "TTFT p50 (s)": summary["TTFT p50 (s)"],
        "wall (s)": summary["wall (s)"],
    }


SLOT_TOKENS = 1024  # KV capacity per concurrent sequence: the workload's longest prompt (768) + output (256)
PEERS = ["llama.cpp", "engine", "kv-waste", "transformers", "sequential", "prefix"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=64, help="engine --max-num-seqs = llama-server slots")
    parser.add_argument("--threads", type=int, default=2, help="threads for every engine")
    parser.add_argument("--llmkit-weights", help="`llmkit serve --weights` (default: the CLI's default)")
    parser.add_argument("--hf-batch", type=int, default=16, help="static batch size for transformers")
    parser.add_argument("--llama-server", help="path to llama.cpp's llama-server (or env LLAMA_SERVER)")
    parser.add_argument("--skip", nargs="*", default=[], choices=PEERS, help="engine = the in-process Engine row")
    parser.add_argument(
        "--replicas", type=int, default=0, help="also serve through `llmkit router` over N replicas (N >= 2)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    smol = load_pretrained(quiet=True)
    jobs = workload(smol.tokenizer, args.requests, args.seed)
    cfg = smol.config
    capacity = args.concurrency * SLOT_TOKENS
    element = 2 if args.llmkit_weights == "bfloat16" else 4
    kv_bytes = capacity * cfg.num_layers * 2 * cfg.num_kv_heads * cfg.head_dim * element
    console.print(
        f"{len(jobs)} requests: prompt tokens mean {statistics.mean(len(p) for p, _ in jobs):.0f}, "
        f"output tokens mean {statistics.mean(o for _, o in jobs):.0f}, total output {sum(o for _, o in jobs)}; "
        f"{args.threads} threads; {args.concurrency} concurrent sequences, KV capacity {capacity} tokens"
    )
    results = {}

    def record(name: str, row: dict) -> None:  # printed as it comes: a long run cut short keeps its rows
        results[name] = row
        console.print(f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))

    ours = f"llmkit serve ({args.concurrency} seqs, HTTP)"
    with console.status("llmkit serve"):
        command = llmkit_command(smol.path, free_port(), args.concurrency, kv_bytes, args.llmkit_weights, args.threads)
        record(ours, run_over_http(command, smol, jobs))
    if args.replicas > 1:
        with console.status(f"llmkit router over {args.replicas} replicas"):
            record(f"llmkit router, {args.replicas} replicas (HTTP)", run_replicas(smol, jobs, args, kv_bytes))
    binary = find_llama_server(args.llama_server)
    if "llama.cpp" in args.skip:
        pass
    elif binary is None:
        console.print("llama-server: not found (--llama-server PATH or env LLAMA_SERVER); see the docstring")
    else:
        with console.status("llama-server"):
            command = llama_server_command(binary, smol.path, free_port(), args.concurrency, capacity, args.threads)
            record(f"llama-server ({args.concurrency} slots, HTTP)", run_over_http(command, smol, jobs))
    kv = None
    if "engine" not in args.skip or "kv-waste" not in args.skip:
        with console.status("llmkit engine in-process"):
            row, kv = run_engine(smol, jobs, args.concurrency, kv_bytes)
            record(f"llmkit Engine ({args.concurrency} seqs, in-process)", row)
    if "transformers" not in args.skip:
        with console.status("transformers static batches"):
            hf = run_transformers(smol, jobs, args.hf_batch)
            if hf:
                record(f"transformers (static b{args.hf_batch}, in-process)", hf)
    if "sequential" not in args.skip:
        with console.status("core sequential reference"):
            record("core reference (sequential, in-process)", run_sequential(smol, jobs))

    table = Table(title=f"serving, all {len(jobs)} requests arriving at once")
    metrics = list(dict.fromkeys(m for row in results.values() for m in row))
    table.add_column("engine")
    for metric in metrics:
        table.add_column(metric, justify="right")
    table.add_column("llmkit serve tok/s ÷ this", justify="right")
    for name, row in results.items():
        cells = [f"{row[m]:.2f}" if m in row else "-" for m in metrics]
        table.add_row(name, *cells, f"{results[ours]['output tok/s'] / row['output tok/s']:.2f}x")
    console.print(table)
    if kv is None:
        return

    waste = Table(title="KV memory waste: reserved but unused token slots per running sequence (mean over steps)")
    waste.add_column("allocation")
    waste.add_column("slots", justify="right")
    waste.add_column("blocks", justify="right")
    for name in ("paged", "contiguous, prompt+max_tokens", "contiguous, full context"):
        waste.add_row(name, f"{kv[name]:.1f}", f"{kv[name] / kv['block_size']:.2f}")
    console.print(waste)

    if "prefix" not in args.skip:
        prefix = Table(title="shared 1,000-token system prompt, 64 requests")
        prefix.add_column("prefix caching")
        rows = {}
        for caching in (True, False):
            with console.status(f"prefix workload, caching={caching}"):
                rows[caching] = prefix_workload(smol, caching)
        for metric in rows[True]:
            prefix.add_column(metric, justify="right")
        for caching, row in rows.items():
            prefix.add_row("on" if caching else "off", *[f"{v:.3f}" for v in row.values()])
        console.print(prefix)


if __name__ == "__main__":
    main()
