"""The vision tower's time per tile, weight memory and error, dense float32 next to weights kept as stored.

    OMP_NUM_THREADS=1 python benchmarks/vision_tower.py [--threads 1] [--repeats 3] [--json out.json]

The model is SmolVLM-256M's vision side with random weights (no vision-language weights are on this machine):
a SigLIP-base tower (width 768, MLP 3072, 12 layers, 12 heads, 512-pixel tiles of 16-pixel patches = 1024
patches) and the pixel-shuffle connector (scale 4: 64 image tokens a tile), over a small random language model
of width 256 (`benchmarks/multimodal.py`'s `write_model`; 256 so that q4_k can quantize it too). Weights:
linear layers normal with std 1/sqrt(fan in), norms 1 and 0, embeddings std 0.02.

Each mode loads the directory through `load_vision_language` in a fresh process: `dense` (float32 `nn.Linear`,
torch's matmul), `as-stored` (the same float32 weights through `QuantizedLinear`, i.e. `ops.quantized_matmul`),
`f16` (the tower's and connector's linears stored as float16, as an `mmproj-*-f16.gguf` holds them),
`quantize=q8_0` and, with `vision_quantize` forcing the tower to them (by default a 4-bit `quantize` leaves the
tower at q8_0), q4_0 and q4_k; float32 activations, and int8 ones for q8_0 and q4_0. Per mode: the CPU time of
one tile through tower + connector (process CPU time, median of `--repeats` after a warm-up), the bytes of the
vision side's weights, the process's RSS after the runs (after `malloc_trim`) and its peak (loading included),
and the error of the image embeddings against `dense` on the same tile: max |diff| / max |dense| and ||diff|| / ||dense||.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from llmkit.core import ops
from llmkit.core.models.quantized import QuantizedLinear
from llmkit.core.models.vision.pretrained import load_vision_language

SIGLIP_BASE = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
TEXT = {"hidden_size": 256, "intermediate_size": 512}
VISION_PREFIXES = ("model.vision_model.", "model.connector.")
MODES = {
    "dense": {},
    "as-stored": {"weights": "as-stored"},
    "f16": {"weights": "as-stored", "f16": True},
    "q8_0": {"quantize": "q8_0"},
    "q8_0 int8": {"quantize": "q8_0", "activations": "int8"},
    "q4_0 tower": {"quantize": "q4_0", "vision_quantize": "q4_0"},
    "q4_0 tower int8": {"quantize": "q4_0", "vision_quantize": "q4_0", "activations": "int8"},
    "q4_k tower": {"quantize": "q4_k", "vision_quantize": "q4_k"},
}


def init(name: str, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name.endswith("layernorm.weight"):
        return torch.ones(shape)
    if name.endswith("norm.weight"):
        return torch.ones(shape)
    if name.endswith(".bias"):
        return torch.zeros(shape) if "norm" in name else torch.randn(shape, generator=generator) * 0.02
    if len(shape) == 2 and "embed" not in name:
        return torch.randn(shape, generator=generator) / shape[1] ** 0.5
    return torch.randn(shape, generator=generator) * 0.02


def write_directories(root: Path) -> dict[str, Path]:
    sys.path.insert(0, str(Path(__file__).parent))
    from multimodal import write_model
    from safetensors.torch import load_file, save_file

    f32 = root / "f32"
    f32.mkdir()
    write_model(f32, vision_overrides=SIGLIP_BASE, text_overrides=TEXT, init=init)
    f16 = root / "f16"
    f16.mkdir()
    for file in f32.iterdir():
        if file.name != "model.safetensors":
            (f16 / file.name).write_bytes(file.read_bytes())
    tensors = load_file(str(f32 / "model.safetensors"))
    linear = ("proj.weight", "fc1.weight", "fc2.weight")
    save_file(
        {n: t.half() if n.startswith(VISION_PREFIXES) and n.endswith(linear) else t for n, t in tensors.items()},
        str(f16 / "model.safetensors"),
    )
    return {"f32": f32, "f16": f16}


def worker(mode: str, directories: dict[str, str], repeats: int, threads: int, out: Path) -> None:
    torch.set_num_threads(threads)
    options = dict(MODES[mode])
    directory = directories["f16" if options.pop("f16", False) else "f32"]
    vlm = load_vision_language(directory, **options)
    model = vlm.model
    vision = [m for n, m in model.named_children() if n != "text_model"]
    weight_bytes = sum(p.numel() * p.element_size() for m in vision for p in m.parameters())
    weight_bytes += sum(b.numel() * b.element_size() for m in vision for b in m.buffers())
    formats = sorted({q.stored.format.name for m in vision for q in m.modules() if isinstance(q, QuantizedLinear)})
    pixels = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(0)) * 2 - 1
    times = []
    with torch.inference_mode():
        features = model.image_features(pixels)
        for _ in range(repeats):
            start = time.process_time()
            model.image_features(pixels)
            times.append(time.process_time() - start)
    torch.save(features, out.with_suffix(".pt"))
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # RSS of what is live, not of what the allocator kept from loading
    row = {
        "mode": mode,
        "cpu_ms_per_tile": 1000 * statistics.median(times),
        "vision_weight_mb": weight_bytes / 2**20,
        "rss_mb": int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "formats": formats,
        "matmul": ops.implementation("quantized_matmul", "cpu").__module__,
    }
    out.write_text(json.dumps(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, from: " + ", ".join(MODES))
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--directories", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, json.loads(args.directories), args.repeats, args.threads, Path(args.out))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        directories = {k: str(v) for k, v in write_directories(root).items()}
        reference = None
        for index, mode in enumerate(args.modes.split(",")):
            out = root / f"row{index}.json"
            command = [sys.executable, __file__, "--worker", mode, "--directories", json.dumps(directories)]
            command += ["--repeats", str(args.repeats), "--threads", str(args.threads), "--out", str(out)]
            subprocess.run(command, check=True)
            row = json.loads(out.read_text())
            features = torch.load(out.with_suffix(".pt"))
            if reference is None:
                reference = features  # the first mode (dense by default) is the reference
            diff = features - reference
            row["max_rel_error"] = float(diff.abs().max() / reference.abs().max())
            row["rms_rel_error"] = float(diff.norm() / reference.norm())
            rows.append(row)
            print(
                f"{mode:>10}: {row['cpu_ms_per_tile']:8.1f} ms CPU/tile  vision weights {row['vision_weight_mb']:6.1f} MB"
                f"  RSS {row['rss_mb']:5.0f} MB (peak {row['peak_rss_mb']:5.0f})  error max {row['max_rel_error']:.2e}"
                f" rms {row['rms_rel_error']:.2e}  {'/'.join(row['formats']) or 'dense'}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
