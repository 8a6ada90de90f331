"""Resuming never unpickles arbitrary objects: a tampered optimizer/scheduler/RNG file is refused, not run."""

from __future__ import annotations

import pathlib

import pytest
import torch

from llmkit.train import train
from llmkit.train.errors import CheckpointError


class _TouchOnLoad:
    """Unpickling this calls Path.touch(marker): what a malicious checkpoint would do with os.system."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("tampered", ["optimizer.pt", "scheduler.pt", "rng-0.pt"])
def test_resume_refuses_a_checkpoint_with_pickled_code(fast, chat_data, tmp_path, tampered):
    options = {**fast, "data": str(chat_data), "max_steps": 2, "batch_size": 2, "save_steps": 1}
    run = train("sft", **options)
    checkpoints = pathlib.Path(run.output_dir) / "checkpoints"
    latest = checkpoints / (checkpoints / "latest").read_text().strip()
    marker = tmp_path / "code-ran"
    torch.save({"state": _TouchOnLoad(marker)}, latest / tampered)
    with pytest.raises(CheckpointError, match="refusing to load"):
        train("sft", **options, resume=True)
    assert not marker.exists()


def test_an_untampered_checkpoint_still_loads(fast, chat_data, capsys):
    options = {**fast, "data": str(chat_data), "max_steps": 2, "batch_size": 2, "save_steps": 1}
    train("sft", **options)
    train("sft", **options, resume=True)
    assert "resumed from step 2" in capsys.readouterr().err
