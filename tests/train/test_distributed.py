"""Scale-out on CPU: 2 processes (torchrun, gloo) follow the same loss trajectory as 1 process with the same
global batch, under DDP and under FSDP2."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from llmkit.train.metrics import read_metrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(processes: int, tiny_model_dir: Path, data: Path, out: Path, *extra: str) -> list[float]:
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}"]
    launcher += [f"--master_port={free_port()}", "--master_addr=127.0.0.1", "-m", "llmkit.core.cli"]
    batch = str(4 // processes)
    args = [
        "train", "sft", "--model", str(tiny_model_dir), "--data", str(data), "--output-dir", str(out),
        "--max-steps", "5", "--batch-size", batch, "--gradient-accumulation-steps", "2",
        "--learning-rate", "2e-3", "--no-progress", *extra,
    ]  # fmt: skip
    done = subprocess.run(launcher + args, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", **_env()})
    assert done.returncode == 0, done.stderr[-3000:]
    return [r["loss"] for r in read_metrics(out) if "loss" in r]


def _env() -> dict:
    import os

    return dict(os.environ)


@pytest.fixture(scope="module")
def one(tiny_model_dir, chat_data, tmp_path_factory) -> list[float]:
    """The one-process trajectory, the same for both strategies: run once per module."""
    return run(1, tiny_model_dir, chat_data, tmp_path_factory.mktemp("one"))


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one(one, tiny_model_dir, chat_data, tmp_path, strategy):
    two = run(2, tiny_model_dir, chat_data, tmp_path / "two", "--distributed", strategy)
    assert len(one) == len(two) == 5
    assert two == pytest.approx(one, rel=1e-4, abs=1e-5)
    assert (tmp_path / "two" / "final" / "model" / "model.safetensors").is_file()
