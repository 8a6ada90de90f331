"""Resident memory of the default engine stage by stage, as `benchmarks/inference.py` runs it: imports
(torch, llmkit, the plugins' discovery with the native kernels), `load_pretrained`, `Engine` with the
benchmark's KV capacity, a first step (the int8 repack happens here), a 512-token prefill, decode at
batch 1 and batch 8. RSS and its peak (VmHWM) in MB (10^6 bytes, as inference.py prints), split into
anonymous and file-backed pages, and the model file's own resident pages (its memory map).

    python benchmarks/load_memory.py [--model smollm2-135m-instruct] [--activations int8] [--threads 2]
"""

from __future__ import annotations

import argparse


def status() -> dict[str, float]:
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                fields[name] = int(value.split()[0]) * 1024 / 1e6
    return fields


def mapped_mb(path_suffix: str) -> float:
    """Resident MB of this process's mappings of files whose path ends with `path_suffix`."""
    total, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            parts = line.split()
            if "-" in parts[0] and not parts[0].endswith(":"):
                inside = len(parts) > 5 and parts[5].endswith(path_suffix)
            elif inside and parts[0] == "Rss:":
                total += int(parts[1])
    return total * 1024 / 1e6


def report(stage: str, model_file: str = "") -> None:
    s = status()
    mapped = mapped_mb(model_file) if model_file else 0.0
    print(
        f"{stage:<26}{s['VmRSS']:>8.0f}{s['VmHWM']:>8.0f}{s['RssAnon']:>8.0f}{s['RssFile']:>8.0f}{mapped:>8.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--activations", default="int8", choices=["int8", "float32"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"{'stage (MB)':<26}{'RSS':>8}{'peak':>8}{'anon':>8}{'file':>8}{'model':>8}")
    report("python")
    import torch

    torch.set_num_threads(args.threads)
    report("import torch")
    from llmkit.core import SamplingParams, load_pretrained, ops
    from llmkit.core.models.store import resolve
    from llmkit.serve import Engine, EngineConfig

    report("import llmkit")
    ops.implementation("quantized_matmul", "cpu")  # discovers every installed plugin (kernels included)
    report("plugins + kernels")
    path = resolve(args.model)
    pretrained = load_pretrained(path, activations=args.activations, quiet=True)
    report("load_pretrained", path.name)
    # inference.py's engine: KV for max(512 + 1, 8 x (128 + 64)) tokens, 8 sequences, no prefix caching.
    config = EngineConfig(
        num_blocks=96, block_size=16, max_num_seqs=8, max_num_batched_tokens=2048, enable_prefix_caching=False
    )
    engine = Engine(pretrained, config=config)
    report("Engine", path.name)

    def generate(prompts: list[list[int]], tokens: int) -> None:
        params = SamplingParams(temperature=0, max_tokens=tokens, ignore_eos=True)
        engine.generate(prompts, params, progress=False)

    generate([list(range(100, 108))], 1)
    report("first step", path.name)
    generate([list(range(100, 612))], 1)
    report("prefill 512", path.name)
    generate([list(range(1000, 1128))], 64)
    report("decode b1 (128 + 64)", path.name)
    generate([list(range(1000 + 7 * i, 1128 + 7 * i)) for i in range(8)], 64)
    report("decode b8 (128 + 64)", path.name)


if __name__ == "__main__":
    main()
