"""CPU time of a prefill, llmkit next to llama.cpp on the same GGUF file, one thread each.

Run: python benchmarks/prefill_cpu.py [--tokens 512] [--repeats 5] [--llamacpp-python /work/peers/venv/bin/python]

Wall-clock tok/s on a shared 2-core box moves by a third between runs a minute apart (docs/benchmarks.md); the CPU
time a process spends on the same prefill moves far less, so this prints tok/s per CPU-second (the minimum over
repeats) and the ratio. llmkit runs the engine's default path (weights as stored, int8 activations); llama.cpp runs
`Llama.eval` with one thread and a 512-token batch, in a subprocess of the interpreter that has llama-cpp-python.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

TEXT = "The quick brown fox jumps over the lazy dog. " * 200

LLAMACPP = """
import json, sys, time
from llama_cpp import Llama
path, tokens, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llm = Llama(model_path=path, n_threads=1, n_threads_batch=1, n_ctx=tokens + 16, n_batch=tokens, n_ubatch=tokens,
            verbose=False)
ids = llm.tokenize(sys.stdin.read().encode())[:tokens]
seconds = []
for _ in range(repeats):
    llm.reset()
    start = time.process_time()
    llm.eval(ids)
    seconds.append(time.process_time() - start)
print(json.dumps({"tokens": len(ids), "cpu_s": min(seconds)}))
"""


def llmkit_prefill(path: str, tokens: int, repeats: int) -> dict:
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    from llmkit.core import SamplingParams, load_pretrained
    from llmkit.serve import Engine, EngineConfig

    pretrained = load_pretrained(path, quiet=True)
    ids = pretrained.tokenizer.encode(TEXT)[:tokens]
    config = EngineConfig(num_blocks=-(-tokens // 16) + 4, block_size=16, max_num_seqs=1,
                          max_num_batched_tokens=max(2048, tokens), enable_prefix_caching=False)  # fmt: skip
    engine = Engine(pretrained, config=config)
    params = SamplingParams(temperature=0, max_tokens=1, ignore_eos=True)
    seconds = []
    for _ in range(repeats + 1):  # the first run is a warm-up
        engine.add_request(ids, params)
        start = time.process_time()
        while engine.has_unfinished():
            engine.step()
        seconds.append(time.process_time() - start)
    return {"tokens": len(ids), "cpu_s": min(seconds[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="GGUF file (default: the default model, pulled)")
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--llamacpp-python", help="interpreter with llama-cpp-python")
    args = parser.parse_args()
    if args.model is None:
        from llmkit.core.models.store import pull

        args.model = str(pull(quiet=True).path)
    rows = {"llmkit (as stored, int8 activations)": llmkit_prefill(args.model, args.tokens, args.repeats)}
    if args.llamacpp_python:
        command = [args.llamacpp_python, "-c", LLAMACPP, args.model, str(args.tokens), str(args.repeats)]
        result = subprocess.run(command, input=TEXT, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            sys.exit(f"llama.cpp run failed:\n{result.stderr[-2000:]}")
        rows["llama.cpp (llama-cpp-python)"] = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"prefill of {args.tokens} tokens, one thread, CPU time (minimum of {args.repeats})")
    print(f"{'engine':<40}{'CPU ms':>10}{'tok/s per CPU-s':>18}")
    for name, row in rows.items():
        print(f"{name:<40}{row['cpu_s'] * 1e3:>10.0f}{row['tokens'] / row['cpu_s']:>18.0f}")
    if len(rows) == 2:
        ours, theirs = rows.values()
        print(f"llama.cpp CPU time / llmkit's: {theirs['cpu_s'] / ours['cpu_s']:.2f}x")


if __name__ == "__main__":
    main()
