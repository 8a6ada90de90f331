"""`--device cpu|cuda|cuda:N|auto`: one flag for every command that loads a model, resolved before loading.

`auto` takes the GPU only where it can run llmkit's native CUDA kernels (torch sees a GPU and a
plugin such as llmkit-kernels registered kernels for "cuda"); asking for CUDA where torch cannot
give it is an error that says what to do, never a silent fall back to the CPU.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

import torch

from .errors import InvalidParameterError

DEVICE_NAMES = "cpu, cuda, cuda:N or auto"
DEVICE_HELP = (
    "where the model runs: cpu, cuda, cuda:N, or auto (default: cuda when a GPU is visible and native CUDA "
    "kernels are installed, else cpu)"
)


def add_device_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The same `--device` flag, default and help on every command that loads a model."""
    parser.add_argument("--device", default="auto", metavar="DEVICE", help=DEVICE_HELP)


def native_cuda_kernels() -> bool:
    """Whether a kernel plugin registered implementations for "cuda" (llmkit-kernels does when it was
    built with CUDA and sees a GPU). Found through the kernel registry: core never imports the plugin."""
    from .ops import kernels

    return any(device == "cuda" for _, device in kernels())


def resolve_device(name: str, *, auto_needs_native_kernels: bool = True) -> torch.device:
    """`cpu`, `cuda`, `cuda:N` or `auto` -> a torch.device this process can use, or InvalidParameterError.

    `auto_needs_native_kernels=False` lets `auto` take any GPU torch sees (training runs torch's own ops)."""
    text = str(name).strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text == "auto":
        usable = torch.cuda.is_available() and (not auto_needs_native_kernels or native_cuda_kernels())
        return torch.device("cuda") if usable else torch.device("cpu")
    kind, colon, index_text = text.partition(":")
    if kind != "cuda" or (colon and not index_text.isdigit()):
        raise InvalidParameterError(f"unknown device {name!r}; use {DEVICE_NAMES}")
    _require_cuda()
    if not colon:
        return torch.device("cuda")
    index, count = int(index_text), torch.cuda.device_count()
    if index >= count:
        visible = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise InvalidParameterError(
            f"device {text} asked for, but torch sees {count} GPU{'s' if count != 1 else ''} ({visible}); "
            f"use one of those, --device cuda, or --device cpu"
        )
    return torch.device("cuda", index)


def _require_cuda() -> None:
    if not torch.backends.cuda.is_built():
        raise InvalidParameterError(
            f"this torch build has no CUDA (torch {torch.__version__}); "
            "install a CUDA build of torch or use --device cpu"
        )
    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        raise InvalidParameterError(
            f"torch {torch.__version__} is built with CUDA {torch.version.cuda} but sees no GPU "
            "(no driver, or CUDA_VISIBLE_DEVICES hides them; check nvidia-smi); use --device cpu"
        )


def describe_device(device: torch.device, requested: str = "auto") -> str:
    """One line for the startup log: the device, its threads or GPU name, and why `auto` chose it."""
    if device.type == "cpu":
        threads = torch.get_num_threads()
        line = f"device cpu ({threads} thread{'s' if threads != 1 else ''})"
        if str(requested).strip().lower() == "auto" and torch.cuda.is_available():
            line += (
                "; auto stayed on cpu: a GPU is visible but no native CUDA kernels are installed "
                "(build llmkit-kernels with CUDA, or pass --device cuda to run on torch's own ops)"
            )
        return line
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        ops = "native CUDA kernels" if native_cuda_kernels() else "torch reference ops, no native CUDA kernels"
        return f"device cuda:{index} ({torch.cuda.get_device_name(index)}; {ops})"
    return f"device {device}"


def log_device(device: torch.device, requested: str = "auto", file: TextIO | None = None) -> None:
    """Say on stderr (one line) which device a command loads its model on."""
    print(f"llmkit: {describe_device(device, requested)}", file=file or sys.stderr, flush=True)
