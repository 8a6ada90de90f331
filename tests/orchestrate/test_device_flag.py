"""`llmkit agent run --device`: the local backend loads the model there; CUDA that is not there is one clear line."""

from __future__ import annotations

import pytest
import torch

from llmkit.core.cli import main


def agent_run(model, *extra):
    return main(["agent", "run", "what is 2+2?", "--backend", "reference", "--model", str(model), "--max-steps", "1", "--max-new-tokens", "2", *extra])  # fmt: skip


def test_agent_loads_on_the_device_asked_and_logs_it(tiny_model_dir, capsys):
    assert agent_run(tiny_model_dir, "--device", "cpu") in (0, 1)  # a random tiny model may not answer in one step
    err = capsys.readouterr().err
    assert "llmkit: device cpu (" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", "cuda"], "this torch build has no CUDA (torch "),
        (["--device", "tpu"], "unknown device 'tpu'; use cpu, cuda, cuda:N or auto"),
        (["--backend-option", "device=cpu"], "give the device with --device, not as a backend option"),
    ],
)
def test_agent_refuses_a_device_it_cannot_use_in_one_line(extra, message, tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)  # a +cpu torch wherever this runs
    assert agent_run(tiny_model_dir, *extra) == 2
    err = capsys.readouterr().err
    assert f"llmkit: error: {message}" in err and "Traceback" not in err
