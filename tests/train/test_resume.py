"""Resume after a kill: a real training process is SIGKILLed mid-run; `--resume` continues with the identical
loss sequence (weights, optimizer, scheduler, RNG and data position all restored)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from llmkit.train import train
from llmkit.train.errors import CheckpointError
from llmkit.train.metrics import read_metrics

STEPS = 8


def command(tiny_model_dir: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "llmkit.core.cli", "train", "sft",
        "--model", str(tiny_model_dir), "--data", str(data), "--output-dir", str(out),
        "--max-steps", str(STEPS), "--batch-size", "3", "--learning-rate", "3e-3", "--warmup-steps", "2",
        "--lora-rank", "4", "--lora-dropout", "0.1", "--save-steps", "2", "--no-progress", *extra,
    ]  # fmt: skip


def losses(out: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(out) if "loss" in r]


KILL_AT_STEP = 6
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}

# The killed run SIGKILLs itself as step 6 begins: steps 1-5 are logged and step 4's checkpoint is the latest.
# Killing from outside on seeing step 5 raced the tiny model, which could finish all 8 steps first.
SELF_KILL = f"""
import os, runpy, signal, sys
from llmkit.train.loop import Trainer
real_step = Trainer._step
def step_or_die(self, step):
    if step + 1 == {KILL_AT_STEP}:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_step(self, step)
Trainer._step = step_or_die
sys.argv = ["llmkit", *sys.argv[1:]]
runpy.run_module("llmkit.core.cli", run_name="__main__")
"""


def test_resume_after_kill_gives_the_identical_loss_sequence(tiny_model_dir, chat_data, tmp_path):
    reference = tmp_path / "uninterrupted"
    out = tmp_path / "killed"
    killed = command(tiny_model_dir, chat_data, out)
    # The uninterrupted run and the killed one are independent: run side by side, their start-ups overlap (one
    # torch thread each, as the resumed run too, so two processes do not oversubscribe two cores).
    uninterrupted = subprocess.Popen(
        command(tiny_model_dir, chat_data, reference),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ONE_THREAD,
    )
    try:
        process = subprocess.run(
            [sys.executable, "-c", SELF_KILL, *killed[3:]], capture_output=True, text=True, env=ONE_THREAD
        )
        _, uninterrupted_stderr = uninterrupted.communicate(timeout=300)
    finally:
        if uninterrupted.poll() is None:
            uninterrupted.kill()
            uninterrupted.wait()
    assert uninterrupted.returncode == 0, uninterrupted_stderr
    expected = losses(reference)
    assert len(expected) == STEPS

    assert process.returncode == -signal.SIGKILL, process.stderr
    assert len(losses(out)) == KILL_AT_STEP - 1
    latest = (out / "checkpoints" / "latest").read_text().strip()
    assert latest == "step-000004"

    resumed = subprocess.run(
        command(tiny_model_dir, chat_data, out, "--resume"), capture_output=True, text=True, env=ONE_THREAD
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from step 4" in resumed.stderr
    assert losses(out) == expected  # bit for bit
    assert [r["step"] for r in read_metrics(out)] == list(range(1, STEPS + 1))


def test_resume_refuses_changed_options(fast, chat_data):
    train("sft", data=str(chat_data), max_steps=2, batch_size=2, save_steps=1, **fast)
    with pytest.raises(CheckpointError, match="learning_rate"):
        train("sft", data=str(chat_data), max_steps=2, batch_size=2, resume=True, **{**fast, "learning_rate": 0.5})


def test_grpo_resume_continues_identically(fast, prompt_data, monkeypatch):
    from llmkit.train.loop import Trainer

    options = {
        **fast, "data": str(prompt_data), "max_steps": 3, "batch_size": 2, "num_generations": 3,
        "max_new_tokens": 6, "kv_cache_memory": "16MiB", "verifiers": {"math_answer": 1.0}, "beta": 0.1,
        "temperature": 1.0, "save_steps": 1, "num_iterations": 2,
    }  # fmt: skip
    full = train("grpo", **{**options, "output_dir": options["output_dir"] + "-full"})
    real_step = Trainer._step

    def stop_at_third(self, step):
        if step == 2:
            raise KeyboardInterrupt
        return real_step(self, step)

    monkeypatch.setattr(Trainer, "_step", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        train("grpo", **options)
    monkeypatch.setattr(Trainer, "_step", real_step)
    resumed = train("grpo", **{**options, "resume": True})
    assert losses(resumed.output_dir) == losses(full.output_dir)
    completions = [
        json.loads(line)["step"] for line in (resumed.output_dir / "completions.jsonl").read_text().split("\n") if line
    ]
    assert sorted(set(completions)) == [1, 2, 3] and completions == sorted(completions)
