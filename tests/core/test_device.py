"""`resolve_device` and the `--device` flag: every name, and a clear error for each CUDA that is not there."""

from __future__ import annotations

import argparse

import pytest
import torch

from llmkit.core.cli import main
from llmkit.core.device import add_device_argument, describe_device, native_cuda_kernels, resolve_device
from llmkit.core.errors import InvalidParameterError
from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, unregister_plugin


class FakeCudaKernels:
    """A kernel plugin that registered for "cuda", as llmkit-kernels does when built with CUDA on a GPU."""

    @hookimpl
    def llmkit_register_kernels(self, register):
        register("apply_token_bitmask_", "cuda", lambda *args: None, priority=7)


@pytest.fixture
def cuda_kernels():
    register_plugin(FakeCudaKernels(), "fake-cuda-kernels")
    try:
        yield
    finally:
        unregister_plugin("fake-cuda-kernels")


@pytest.fixture
def cpu_only_torch(monkeypatch):
    """torch as a +cpu wheel is, wherever the test runs."""
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def gpus(monkeypatch, count: int) -> None:
    """A CUDA build of torch that sees `count` GPUs."""
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_cpu_and_names_are_case_and_space_insensitive():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "mps", "cuda:", "cuda:x", "cuda:-1", "", "cpu:0", "cudа"])
def test_unknown_names_say_what_is_accepted(name):
    with pytest.raises(InvalidParameterError, match=r"unknown device .*; use cpu, cuda, cuda:N or auto"):
        resolve_device(name)


@pytest.mark.skipif(torch.backends.cuda.is_built(), reason="this torch has CUDA: the case below is a CPU-only torch")
def test_cuda_on_this_cpu_only_torch_is_the_clear_error():
    for name in ("cuda", "cuda:0"):
        with pytest.raises(InvalidParameterError) as err:
            resolve_device(name)
        assert str(err.value) == (
            f"this torch build has no CUDA (torch {torch.__version__}); "
            "install a CUDA build of torch or use --device cpu"
        )


def test_cuda_without_cuda_in_torch(cpu_only_torch):
    with pytest.raises(InvalidParameterError, match=r"this torch build has no CUDA \(torch .*\); install a CUDA"):
        resolve_device("cuda:1")


def test_cuda_build_without_a_gpu(monkeypatch):
    gpus(monkeypatch, 0)
    with pytest.raises(InvalidParameterError, match="is built with CUDA .* but sees no GPU .*use --device cpu"):
        resolve_device("cuda")


def test_cuda_index_out_of_range_names_the_visible_gpus(monkeypatch):
    gpus(monkeypatch, 1)
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(InvalidParameterError, match=r"device cuda:1 asked for, but torch sees 1 GPU \(cuda:0\)"):
        resolve_device("cuda:1")
    gpus(monkeypatch, 2)
    assert resolve_device("CUDA:1") == torch.device("cuda", 1)
    with pytest.raises(InvalidParameterError, match=r"torch sees 2 GPUs \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")


def test_auto_without_a_gpu_is_cpu(cpu_only_torch, cuda_kernels):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("auto", auto_needs_native_kernels=False) == torch.device("cpu")


def test_auto_with_a_gpu_but_no_native_cuda_kernels_stays_on_cpu_and_says_why(monkeypatch):
    gpus(monkeypatch, 1)
    assert not native_cuda_kernels()
    device = resolve_device("auto")
    assert device == torch.device("cpu")
    assert "auto stayed on cpu: a GPU is visible but no native CUDA kernels" in describe_device(device, "auto")
    assert "auto stayed" not in describe_device(device, "cpu")
    assert resolve_device("auto", auto_needs_native_kernels=False) == torch.device("cuda")


def test_auto_with_a_gpu_and_native_cuda_kernels_is_cuda(monkeypatch, cuda_kernels):
    gpus(monkeypatch, 1)
    assert native_cuda_kernels()
    assert resolve_device("auto") == torch.device("cuda")


def test_cpu_line_names_the_threads(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert describe_device(torch.device("cpu")) == "device cpu (2 threads)"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert describe_device(torch.device("cpu")) == "device cpu (1 thread)"


def test_cuda_line_names_the_gpu_and_the_ops(monkeypatch, cuda_kernels):
    gpus(monkeypatch, 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"Fake GPU {index}")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert describe_device(torch.device("cuda")) == "device cuda:0 (Fake GPU 0; native CUDA kernels)"


def test_the_flag_defaults_to_auto():
    parser = argparse.ArgumentParser()
    add_device_argument(parser)
    assert parser.parse_args([]).device == "auto"
    assert parser.parse_args(["--device", "cuda:1"]).device == "cuda:1"


def test_generate_runs_on_the_device_asked_and_logs_it(tiny_model_dir, capsys):
    args = ["--model", str(tiny_model_dir), "--raw", "--max-tokens", "2", "--temperature", "0"]
    assert main(["generate", "hello", *args, "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "llmkit: device cpu (" in err


@pytest.mark.parametrize("command", [["generate", "hello"], ["chat"]])
def test_generate_and_chat_refuse_cuda_without_it_in_one_line(command, tiny_model_dir, cpu_only_torch, capsys):
    assert main([*command, "--model", str(tiny_model_dir), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmkit: error: this torch build has no CUDA")
    assert "Traceback" not in err and "llmkit: device" not in err  # refused before loading anything
