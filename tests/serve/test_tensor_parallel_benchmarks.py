"""The tensor-parallel benchmark code on CPU: `benchmarks/tensor_parallel.py`'s `measure` (which
`benchmarks/gpu_check.py` calls on CUDA with NCCL) runs the tiny model at TP 1 and 2 with greedy ids
equal, and gpu_check's tensor-parallel section checks its arguments and is skipped, with the reason
printed, on fewer than two GPUs or when no size above 1 divides the model.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_measure_runs_one_and_two_ranks_with_equal_greedy_ids(tiny_model_dir):
    benchmark = _load("tensor_parallel")
    prompts = [[5, 17, 99, 230], [300, 12]]
    options = dict(prefill_tokens=32, decode_tokens=4, batch=2, golden_tokens=8)
    one, two = (benchmark.measure(str(tiny_model_dir), size, prompts, **options) for size in (1, 2))
    assert one.greedy_ids == two.greedy_ids and len(one.greedy_ids[0]) == 8
    assert one.all_reduce_ms_per_step is None and two.all_reduce_ms_per_step > 0
    assert len(two.weight_mib_per_rank) == 2 and two.forward == "layer-by-layer"
    assert one.prefill_tok_s > 0 and two.decode_tok_s > 0
    benchmark.print_table([one, two], None, 8)


def test_gpu_check_skips_tensor_parallel_on_one_gpu_with_the_reason(capsys):
    gpu_check = _load("gpu_check")
    report = gpu_check.Report()
    gpu_check.check_tensor_parallel(report, 1, None, None)
    assert "tensor parallel: skipped: 1 GPU visible; tensor parallelism needs at least 2" in capsys.readouterr().out
    assert report.rows == []


def test_gpu_check_plans_the_sizes_that_divide_the_default_model(smollm2_path):
    gpu_check = _load("gpu_check")
    assert gpu_check.tensor_parallel_plan(4, None, str(smollm2_path)) == (str(smollm2_path), [1, 3])
    with pytest.raises(gpu_check.SkipSection, match=r"no size in \[1, 2\] above 1 splits .* over 2 GPUs"):
        gpu_check.tensor_parallel_plan(2, [1, 2], str(smollm2_path))


def test_gpu_check_arguments(monkeypatch, capsys):
    gpu_check = _load("gpu_check")
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine
    assert gpu_check.main(["--tp-sizes", "1", "3", "--tp-model", "x", "--skip-tensor-parallel"]) == 0
    assert "no CUDA GPU here" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        gpu_check.main(["--tp-sizes", "two"])
    assert bad.value.code == 2 and "--tp-sizes: invalid int value: 'two'" in capsys.readouterr().err
