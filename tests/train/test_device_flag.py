"""`llmkit train METHOD --device`: the same resolution as every command, logged; CUDA not there is one clear line."""

from __future__ import annotations

import pytest
import torch

from llmkit.core.cli import main
from llmkit.train.distributed import choose_device


def gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_sft_logs_its_device_and_trains(tiny_model_dir, chat_data, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--model", str(tiny_model_dir), "--data", str(chat_data), "--output-dir", str(out)]
    assert (
        main(["train", "sft", *args, "--max-steps", "1", "--batch-size", "2", "--no-progress", "--device", "cpu"]) == 0
    )
    assert "llmkit: device cpu (" in capsys.readouterr().err


def test_sft_refuses_cuda_without_it_in_one_line(tiny_model_dir, chat_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)  # a +cpu torch wherever this runs
    out = tmp_path / "out"
    args = ["--model", str(tiny_model_dir), "--data", str(chat_data), "--output-dir", str(out), "--device", "cuda"]
    assert main(["train", "sft", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmkit: error: this torch build has no CUDA (torch ")
    assert "Traceback" not in err and not out.exists()


def test_cuda_takes_the_gpu_of_the_local_rank_and_auto_needs_no_native_kernels(monkeypatch):
    gpus(monkeypatch, 2)
    assert choose_device("cuda", 1) == torch.device("cuda", 1)
    assert choose_device("auto", 1) == torch.device("cuda", 1)  # training runs torch's own ops on the GPU
    assert choose_device("cuda:0", 1) == torch.device("cuda", 0)
    gpus(monkeypatch, 0)
    assert choose_device("auto", 0) == torch.device("cpu")
    with pytest.raises(Exception, match="sees no GPU"):
        choose_device("cuda", 0)
