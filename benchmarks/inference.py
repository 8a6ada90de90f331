"""Single-model inference speed: llmkit's Engine next to llama.cpp and HF transformers on one GGUF file.

    python benchmarks/inference.py [--threads 2] [--repeats 3] [--llmkit-modes float32,bfloat16,as-stored]
        [--llamacpp-python /work/peers/venv/bin/python] [--bandwidth-gbs 48] [--skip transformers ...]

Every engine runs in a subprocess of its own (benchmarks/inference_workers.py), so its peak RSS
(VmHWM of the child) is its own, with the same threads, the same GGUF file (default: SmolLM2-135M-Instruct
Q4_1) and the same KV capacity (max(prefill+1, 8 x (prompt+new)) tokens). Per engine: prefill of 512
tokens (tok/s, batch 1, empty cache), decode at batch 1 and batch 8 (8 sequences of the same prompt
length, tok/s summed over the batch, prefill and first token excluded), peak RSS, and greedy agreement
with core's float32 reference `generate()` (32 tokens on 5 chat prompts, EOS ignored: tokens equal up to
the first divergence, and prompts equal in all 32). Medians over --repeats. The batch-1 roofline: a
decode step reads every weight once, so bandwidth / weight bytes is the most tokens/s batch 1 can
reach; the table prints the fraction reached of the engine's own limit and of the Q4_1 file's.

Engines:
- llmkit: `Engine` from llmkit.serve on `load_pretrained(weights=<mode>)`; a mode this build cannot
  load (as-stored before the loader keeps GGUF blocks) is printed as not available.
- llama.cpp: llama-cpp-python's low-level API (`llama_batch` with one seq_id per sequence, argmax
  over `llama_get_logits_ith`), mmap'd weights as stored, unified KV of the same capacity. Its high-level
  `Llama` class decodes one sequence at a time, so batch 8 needs the batch API.
- transformers: `AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)` (dequantized to float32),
  a greedy loop over its own KV cache with `logits_to_keep=1`.

Getting the peer (kept outside the repository and llmkit's venv; the llama.cpp worker only needs
llama_cpp and numpy):

    python3 -m venv /work/peers/venv
    CMAKE_BUILD_PARALLEL_LEVEL=2 /work/peers/venv/bin/pip install llama-cpp-python==0.3.36   # builds llama.cpp

Writes benchmarks/results/inference.json (every number, the runs behind each median, the settings).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "inference_workers.py"
RESULTS = HERE / "results" / "inference.json"
LLAMACPP = "llama.cpp"
GOALS = {"prefill_tok_s": 3.0, "decode_b1_tok_s": 1.5, "decode_b8_tok_s": 2.0}  # issue 18, x llama.cpp
RSS_GOAL_MB = 100  # peak RSS at most llama.cpp's + 100 MB


def measure_bandwidth(threads: int, megabytes: int = 512, repeats: int = 5) -> float:
    """Memory bandwidth in GB/s, bytes read + written by a large numpy copy split over `threads`
    threads (numpy copies without the GIL); the best of 1..threads threads and `repeats` runs."""
    import numpy as np

    source = np.ones(megabytes * 2**20 // 8)
    target = np.empty_like(source)
    best = 0.0
    for count in range(1, threads + 1):
        edges = np.linspace(0, source.size, count + 1).astype(int)
        for _ in range(repeats):
            workers = [
                threading.Thread(target=np.copyto, args=(target[a:b], source[a:b]))
                for a, b in itertools.pairwise(edges)
            ]
            start = time.perf_counter()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            best = max(best, 2 * source.nbytes / (time.perf_counter() - start) / 1e9)
    return best


def run_worker(python: str, engine: str, spec: dict, timeout: float) -> dict:
    """Run one engine's worker in its own process; its JSON result, or {"error": ...}."""
    with tempfile.TemporaryDirectory(prefix="llmkit-inference-") as folder:
        spec_path, out_path = Path(folder) / "spec.json", Path(folder) / "out.json"
        spec_path.write_text(json.dumps(spec))
        env = os.environ | {"OMP_NUM_THREADS": str(spec["threads"]), "PYTHONUNBUFFERED": "1"}
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [python, "-X", "faulthandler", str(WORKER), engine, str(spec_path), str(out_path)],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        if done.returncode != 0 or not out_path.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-12:]
            return {"error": f"exit status {done.returncode}: " + " | ".join(tail)}
        result = json.loads(out_path.read_text())
        result["wall_seconds"] = time.perf_counter() - started
        return result


def agreement(reference: list[dict], ids: list[list[int]]) -> dict:
    """Tokens equal to the reference up to each prompt's first divergence, and prompts equal throughout."""
    firsts = []
    for case, got in zip(reference, ids, strict=True):
        want = case["ids_out"]
        firsts.append(next((i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), len(want)))
    total = sum(len(case["ids_out"]) for case in reference)
    return {
        "prefix_tokens": sum(firsts),
        "total_tokens": total,
        "prefix_fraction": sum(firsts) / total,
        "exact_prompts": sum(f == len(c["ids_out"]) for f, c in zip(firsts, reference, strict=True)),
        "prompts": len(reference),
        "first_divergence": firsts,
    }


def llamacpp_python(explicit: str | None) -> str | None:
    for candidate in (explicit, os.environ.get("LLAMACPP_PYTHON")):
        if candidate:
            if not Path(candidate).is_file():
                raise SystemExit(f"--llamacpp-python {candidate}: no such interpreter")
            return candidate
    return sys.executable if importlib.util.find_spec("llama_cpp") else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="GGUF file or catalog name (default: the default model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prefill-tokens", type=int, default=512)
    parser.add_argument("--prompt-tokens", type=int, default=128, help="prompt length of the decode runs")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated per decode run")
    parser.add_argument("--batch", type=int, default=8, help="sequences of the large-batch decode run")
    parser.add_argument("--llmkit-modes", default="float32,bfloat16,as-stored,as-stored-int8")
    parser.add_argument("--llamacpp-python", help="interpreter with llama-cpp-python (or env LLAMACPP_PYTHON)")
    parser.add_argument("--bandwidth-gbs", type=float, help="memory bandwidth to use instead of measuring it")
    parser.add_argument("--skip", nargs="*", default=[], choices=["llama.cpp", "llmkit", "transformers"])
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per engine")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads < 1 or args.repeats < 1 or args.batch < 1 or args.new_tokens < 2:
        parser.error("--threads, --repeats and --batch must be >= 1 and --new-tokens >= 2")

    from rich.console import Console

    from llmkit.core.models.store import DEFAULT_MODEL, resolve

    console = Console(width=max(Console().width, 160))  # the tables are wide; do not squeeze them in a pipe
    model = resolve(args.model or DEFAULT_MODEL)
    load_before = os.getloadavg()
    with console.status("measuring memory bandwidth"):
        bandwidth = args.bandwidth_gbs or measure_bandwidth(args.threads)
    bandwidth_source = "--bandwidth-gbs" if args.bandwidth_gbs else "numpy copy, read+write bytes"
    console.print(f"model {model.name}; {args.threads} threads; bandwidth {bandwidth:.1f} GB/s ({bandwidth_source})")

    spec = {
        "model": str(model),
        "threads": args.threads,
        "repeats": args.repeats,
        "prefill_tokens": args.prefill_tokens,
        "decode_prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "batch": args.batch,
        "agreement_tokens": 32,
        "kv_tokens": max(args.prefill_tokens + 1, args.batch * (args.prompt_tokens + args.new_tokens)),
    }
    with console.status("core float32 reference: prompts and greedy ids"):
        reference = run_worker(sys.executable, "reference", spec, args.timeout)
    if "error" in reference:
        raise SystemExit(f"the reference worker failed: {reference['error']}")
    spec |= {k: reference[k] for k in ("prefill_ids", "decode_prompts", "agreement")}

    engines: dict[str, tuple[str, str]] = {}
    if "llama.cpp" not in args.skip:
        python = llamacpp_python(args.llamacpp_python)
        if python:
            engines[LLAMACPP] = (python, "llamacpp")
        else:
            console.print("llama.cpp: skipped (no --llamacpp-python and llama_cpp does not import here)")
    if "llmkit" not in args.skip:
        for mode in filter(None, (m.strip() for m in args.llmkit_modes.split(","))):
            engines[f"llmkit Engine, {mode}"] = (sys.executable, f"llmkit:{mode}")
    if "transformers" not in args.skip:
        engines["transformers (float32)"] = (sys.executable, "transformers")

    results: dict[str, dict] = {}
    for name, (python, engine) in engines.items():
        with console.status(f"{name}"):
            result = run_worker(python, engine, spec, args.timeout)
        if "greedy_ids" in result:
            result["agreement"] = agreement(spec["agreement"], result["greedy_ids"])
            result["bandwidth_limit_tok_s"] = bandwidth * 1e9 / result["weights_bytes"]
        results[name] = result
        console.print(f"{name}: {summary_line(result)}")

    file_limit = bandwidth * 1e9 / model.stat().st_size
    print_tables(console, results, args, bandwidth, file_limit)
    report = {
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "python": platform.python_version(),
        },
        "bandwidth_gbs": bandwidth,
        "bandwidth_source": bandwidth_source,
        "model_file": str(model),
        "model_file_bytes": model.stat().st_size,
        "file_bandwidth_limit_tok_s": file_limit,
        "settings": {k: v for k, v in spec.items() if k not in ("prefill_ids", "decode_prompts", "agreement")},
        "reference_greedy": [{"prompt": c["prompt"], "ids_out": c["ids_out"]} for c in spec["agreement"]],
        "engines": results,
        "vs_llamacpp": ratios(results),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    console.print(f"wrote {args.output}")


def summary_line(result: dict) -> str:
    if "error" in result:
        return f"[red]failed[/red]: {result['error']}"
    if "unavailable" in result:
        return result["unavailable"]
    return (
        f"prefill {result['prefill_tok_s']:.0f} tok/s, decode b1 {result['decode_b1_tok_s']:.1f}, "
        f"b8 {result['decode_b8_tok_s']:.1f}, peak RSS {result['peak_rss_bytes'] / 1e6:.0f} MB"
    )


def ratios(results: dict[str, dict]) -> dict[str, dict]:
    base = results.get(LLAMACPP, {})
    if "prefill_tok_s" not in base:
        return {}
    out = {}
    for name, result in results.items():
        if name == LLAMACPP or "prefill_tok_s" not in result:
            continue
        row = {metric: result[metric] / base[metric] for metric in GOALS}
        row["peak_rss_delta_mb"] = (result["peak_rss_bytes"] - base["peak_rss_bytes"]) / 1e6
        row["meets"] = {metric: row[metric] >= goal for metric, goal in GOALS.items()} | {
            "peak_rss": row["peak_rss_delta_mb"] <= RSS_GOAL_MB
        }
        out[name] = row
    return out


def print_tables(console, results: dict[str, dict], args, bandwidth: float, file_limit: float) -> None:
    from rich.table import Table

    table = Table(
        title=f"tok/s, median of {args.repeats}; {args.threads} threads; prefill {args.prefill_tokens}, "
        f"decode prompt {args.prompt_tokens} + {args.new_tokens} new; bandwidth {bandwidth:.1f} GB/s"
    )
    for column in ("engine", "prefill", "decode b1", f"decode b{args.batch}", "peak RSS MB", "weights MB"):
        table.add_column(column, justify="left" if column == "engine" else "right")
    table.add_column("b1 / own BW limit", justify="right")
    table.add_column(f"b1 / GGUF-file limit ({file_limit:.0f})", justify="right")
    table.add_column("greedy = fp32 ref (tokens; prompts)", justify="right")
    for name, result in results.items():
        if "prefill_tok_s" not in result:
            table.add_row(name, result.get("unavailable") or f"failed: {result['error'][:60]}", *[""] * 7)
            continue
        agree = result["agreement"]
        table.add_row(
            name,
            f"{result['prefill_tok_s']:.0f}",
            f"{result['decode_b1_tok_s']:.1f}",
            f"{result['decode_b8_tok_s']:.1f}",
            f"{result['peak_rss_bytes'] / 1e6:.0f}",
            f"{result['weights_bytes'] / 1e6:.0f}",
            f"{result['decode_b1_tok_s'] / result['bandwidth_limit_tok_s']:.0%}",
            f"{result['decode_b1_tok_s'] / file_limit:.0%}",
            f"{agree['prefix_tokens']}/{agree['total_tokens']}; {agree['exact_prompts']}/{agree['prompts']}",
        )
    console.print(table)
    rows = ratios(results)
    if not rows:
        return
    versus = Table(title="vs llama.cpp (goal in brackets)")
    versus.add_column("engine")
    for label, goal in (("prefill", 3.0), ("decode b1", 1.5), (f"decode b{args.batch}", 2.0)):
        versus.add_column(f"{label} [≥{goal}x]", justify="right")
    versus.add_column(f"peak RSS Δ MB [≤{RSS_GOAL_MB}]", justify="right")
    for name, row in rows.items():
        versus.add_row(name, *[f"{row[metric]:.2f}x" for metric in GOALS], f"{row['peak_rss_delta_mb']:+.0f}")
    console.print(versus)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
