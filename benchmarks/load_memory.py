"""Resident memory of the default engine stage by stage: imports, `load_pretrained`, `Engine`, a first
prefill (the int8 repack happens here) and a 512-token prefill. RSS and its peak (VmHWM) in MB, split
into anonymous and file-backed pages (the memory-mapped GGUF counts as file-backed).

    python benchmarks/load_memory.py [--model smollm2-135m-instruct] [--activations int8]
"""

from __future__ import annotations

import argparse


def status() -> dict[str, int]:
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                fields[name] = int(value.split()[0]) // 1024
    return fields


def report(stage: str) -> None:
    s = status()
    print(f"{stage:<24}{s['VmRSS']:>8}{s['VmHWM']:>8}{s['RssAnon']:>8}{s['RssFile']:>8}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--activations", default="int8", choices=["int8", "float32"])
    args = parser.parse_args()
    print(f"{'stage (MB)':<24}{'RSS':>8}{'peak':>8}{'anon':>8}{'file':>8}")
    report("python")
    import torch

    report("import torch")
    from llmkit.core import SamplingParams, load_pretrained
    from llmkit.serve import Engine, EngineConfig

    report("import llmkit")
    pretrained = load_pretrained(args.model, activations=args.activations, quiet=True)
    report("load_pretrained")
    config = EngineConfig(num_blocks=256, block_size=16, max_num_seqs=8, max_num_batched_tokens=2048)
    engine = Engine(pretrained, config=config)
    report("Engine")
    params = SamplingParams(temperature=0, max_tokens=1, ignore_eos=True)
    engine.generate([list(range(100, 108))], params, progress=False)
    report("first step")
    engine.generate([list(range(100, 612))], params, progress=False)
    report("prefill 512")
    del torch


if __name__ == "__main__":
    main()
