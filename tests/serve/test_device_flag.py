"""`llmkit serve --device`: the engine loads where the flag says, and a CUDA that is not there is one clear line."""

from __future__ import annotations

import pytest
import torch
import uvicorn

import llmkit.serve.engine as engine_module
import llmkit.serve.speculative.speculator as speculator
from llmkit.core.cli import main
from llmkit.core.testing import write_tiny_model
from llmkit.serve.engine import Engine
from llmkit.serve.speculative import SpeculativeConfig


@pytest.fixture
def started(monkeypatch):
    """Engines `llmkit serve` builds, with uvicorn.run replaced so the command returns instead of serving."""
    engines: list[Engine] = []

    class RecordingEngine(Engine):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            engines.append(self)

    monkeypatch.setattr(engine_module, "Engine", RecordingEngine)
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: None)
    return engines


def test_serve_loads_the_engine_on_the_device_asked_and_logs_it(tiny_model_dir, started, capsys):
    code = main(["serve", "--model", str(tiny_model_dir), "--device", "cpu", "--kv-cache-memory", "4MiB"])
    assert code == 0
    assert len(started) == 1 and started[0].pretrained.model.device == torch.device("cpu")
    assert "llmkit: device cpu (" in capsys.readouterr().err


def test_serve_refuses_cuda_without_it_before_loading(tiny_model_dir, started, monkeypatch, capsys):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)  # a +cpu torch wherever this runs
    assert main(["serve", "--model", str(tiny_model_dir), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmkit: error: this torch build has no CUDA (torch ")
    assert "install a CUDA build of torch or use --device cpu" in err and "Traceback" not in err
    assert started == []


def test_the_draft_model_loads_on_the_targets_device(tiny, tmp_path, monkeypatch):
    """Speculative decoding with a draft model: the draft must sit on the target's device (cuda stays cuda)."""
    devices = []
    real_load = speculator.load_pretrained

    def recording_load(*args, **kwargs):
        devices.append(kwargs.get("device"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(speculator, "load_pretrained", recording_load)
    draft = write_tiny_model(tmp_path / "draft", seed=11, num_hidden_layers=1)
    config = SpeculativeConfig("draft", num_tokens=2, draft_model=str(draft), draft_num_blocks=16)
    Engine(tiny, num_blocks=32, speculative=config)
    assert devices == [tiny.model.device]
