"""`llmkit interp lens|probe|steer`: the lens on the default model, probe and steer on a tiny one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from llmkit.core.cli import main


def test_lens_on_the_default_model_ends_on_the_answer(smollm2_path):
    env = dict(os.environ, LLMKIT_HOME=str(smollm2_path.parents[2]))
    result = subprocess.run(
        [sys.executable, "-m", "llmkit.core.cli", "interp", "lens", "The capital of France is", "--top", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 31 and rows[0].split("│")[1].strip() == "embed"
    assert rows[-1].split("│")[2].strip().startswith("' Paris'")


def test_probe_prints_a_row_per_layer(tiny_model_dir, capsys):
    assert main(["interp", "probe", "--model", str(tiny_model_dir), "--seeds", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "200 statements" in out and "split by true/false pair" in out
    layers = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    assert layers == ["0", "1", "2"]


def test_steer_reports_each_scale(tiny_model_dir, capsys):
    argv = ["interp", "steer", "--model", str(tiny_model_dir), "--layer", "1", "--scales=-2,0,2", "--max-tokens", "4"]
    assert main([*argv, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    scales = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    assert scales == ["-2", "0", "2"] and "of 20" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--scales", "a,b"], "--scales must be comma-separated numbers"),
        (["--layer", "99"], "resid layer 99 is outside"),
    ],
)
def test_steer_bad_arguments_fail_clearly(tiny_model_dir, capsys, argv, message):
    assert main(["interp", "steer", "--model", str(tiny_model_dir), "--device", "cpu", *argv]) == 2
    assert message in capsys.readouterr().err
