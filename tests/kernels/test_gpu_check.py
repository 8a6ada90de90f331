"""benchmarks/gpu_check.py's glue, on the CPU: rows are printed and written as they are checked, a check
that raises becomes a failed row and the run goes on, timing turns the CUDA checks back on whatever
happens, the build path refuses to build without nvcc and re-executes itself after replacing a loaded
module, a missing gguf stops it at once, and the tensor-parallel section skips on one GPU before it
imports llmkit.serve. The GPU run itself is the device check in docs/kernels.md."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("benchmark_gpu_check_glue", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_rows_reach_the_output_file_as_they_are_checked(gpu_check, tmp_path, capsys):
    report = gpu_check.Report(tmp_path / "out" / "table.txt")
    try:
        report.check("op", "first case", 0.5, 1.0)
        written = (tmp_path / "out" / "table.txt").read_text()  # before close: flushed per row
        assert "first case" in written and written.startswith("op ")
        assert "first case" in capsys.readouterr().out
    finally:
        report.close()


def test_a_check_that_raises_is_a_failed_row_and_the_run_goes_on(gpu_check, tmp_path):
    report = gpu_check.Report(tmp_path / "table.txt")
    with report.attempt("paged_attention_decode", "int4 d96"):
        raise ValueError("head_dim 96\nunsupported")
    report.check("next", "still runs", 0.0, 0.0)
    report.summary()
    report.close()
    assert report.failures == 1 and len(report.rows) == 2
    text = (tmp_path / "table.txt").read_text()
    assert "RAISED ValueError: head_dim 96 unsupported" in text
    assert "Traceback (most recent call last)" in text and "1 passed, 1 failed" in text


def test_timing_turns_the_cuda_checks_back_on_when_the_call_raises(gpu_check):
    calls = []
    kernels = types.SimpleNamespace(_C=types.SimpleNamespace(set_cuda_checks=calls.append))
    with pytest.raises(RuntimeError), gpu_check.unchecked(kernels):
        raise RuntimeError("timed call failed")
    assert calls == [False, True]


def test_a_missing_gguf_stops_the_run_with_how_to_carry_it(gpu_check, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else find_spec(name, *a))
    with pytest.raises(SystemExit) as stopped:
        gpu_check.main(["--device", "cpu"])
    assert "pip download --no-deps gguf==0.19.0" in str(stopped.value.code)


def test_no_build_without_nvcc(gpu_check, monkeypatch):
    monkeypatch.setattr(gpu_check, "import_kernels", lambda: None)
    monkeypatch.setattr(gpu_check.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="nvcc is not on PATH"):
        gpu_check.ensure_built()


def test_a_build_over_a_loaded_module_re_executes_the_script(gpu_check, monkeypatch):
    cpu_only = types.SimpleNamespace(_C=types.SimpleNamespace(cuda_built=lambda: False, __file__="old/_C.so"))
    commands, execs = [], []
    monkeypatch.setattr(gpu_check, "import_kernels", lambda: cpu_only)
    monkeypatch.setattr(gpu_check, "cuda_archs", lambda: "90a-real")
    monkeypatch.setattr(gpu_check.shutil, "which", lambda name: "/usr/local/bin/nvcc")
    monkeypatch.setattr(gpu_check.subprocess, "run", lambda command, check: commands.append(command))

    class Replaced(Exception):
        """os.execv does not return: the process becomes the new run."""

    def execv(*args):
        execs.append(args)
        raise Replaced

    monkeypatch.setattr(gpu_check.os, "execv", execv)
    monkeypatch.delenv(gpu_check.REBUILT_ENV, raising=False)
    monkeypatch.setattr(gpu_check.os, "environ", dict(gpu_check.os.environ))
    with pytest.raises(Replaced):
        gpu_check.ensure_built()
    assert commands[0][1:6] == ["-m", "pip", "install", "-v", "--no-build-isolation"]
    assert "-Ccmake.define.LLMKIT_CUDA_ARCHS=90a-real" in commands[0]
    assert execs == [(sys.executable, [sys.executable, *sys.argv])]
    assert gpu_check.os.environ[gpu_check.REBUILT_ENV] == "1"
    with pytest.raises(SystemExit, match="still has no CUDA after the build"):
        gpu_check.ensure_built()  # the re-executed run finds the same CPU-only module


def test_tensor_parallel_skips_on_one_gpu_without_importing_serve(gpu_check, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "llmkit.serve", None)  # importing it would raise
    monkeypatch.setitem(sys.modules, "llmkit.serve.parallel", None)
    report = gpu_check.Report()
    gpu_check.check_tensor_parallel(report, 1, None, None)
    assert "tensor parallel: skipped: 1 GPU visible" in capsys.readouterr().out


def test_cpu_dry_run_checks_the_cpu_kernels_and_goes_on_past_a_failure(gpu_check, monkeypatch, tmp_path):
    import llmkit.kernels as kernels

    monkeypatch.setattr(gpu_check, "attention_cases", lambda: iter([("int8", gpu_check.torch.float32, 64, 2, 32)]))

    def broken_prefill(*args, **kwargs):
        raise RuntimeError("prefill kernel failed")

    monkeypatch.setattr(kernels, "paged_attention_prefill", broken_prefill)
    assert gpu_check.main(["--device", "cpu", "--output", str(tmp_path / "gpu_check.txt")]) == 1
    text = (tmp_path / "gpu_check.txt").read_text()
    assert "paged_attention_decode    int8 float32 d64 gqa2 bs32 split=True" in text
    assert "RAISED RuntimeError: prefill kernel failed" in text
    assert "reshape_and_cache         int4 bit-exact" in text and "quantized_matmul          q6_k n512" in text
    assert "failed (1):" in text and " passed, 1 failed" in text
