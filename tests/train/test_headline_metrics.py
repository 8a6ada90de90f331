"""Each method's headline metric is logged every step and shown in the progress bar and the printed line
(issue 25: DPO and reward-model bars showed no metric of their own; GRPO/PPO show the mean reward)."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest

from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, unregister_plugin
from llmkit.core.verifiers import VerifierResult
from llmkit.train import loop, train
from llmkit.train.api import METHODS
from llmkit.train.metrics import ProgressDisplay, read_metrics

EXPECTED = {
    "sft": (),
    "reward": ("accuracy",),
    "dpo": ("accuracy", "reward_margin"),
    "grpo": ("reward_mean",),
    "ppo": ("reward_mean",),
}


class LetterCountVerifier:
    @hookimpl
    def llmkit_register_verifiers(self, register):
        register("letter_share", lambda p, completion, r: VerifierResult(False, min(len(completion), 10) / 10))


@pytest.fixture
def letter_verifier():
    register_plugin(LetterCountVerifier(), "letter-verifier")
    yield
    unregister_plugin("letter-verifier")


def method_options(method, fast, chat_data, preference_data, tmp_path):
    if method == "sft":
        return {"data": str(chat_data), "batch_size": 4}
    if method in ("reward", "dpo"):
        return {"data": str(preference_data), "batch_size": 4}
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(f'{{"prompt": "Count to {i}:"}}\n' for i in range(4)))
    options = {"data": str(prompts), "batch_size": 2, "max_new_tokens": 6, "kv_cache_memory": "16MiB"}
    options |= {"micro_batch_size": 4, "verifiers": {"letter_share": 1.0}}
    return options | ({"num_generations": 2} if method == "grpo" else {})


class RecordingDisplay(ProgressDisplay):
    statuses: ClassVar[list[str]] = []

    def step(self, record, print_line):
        super().step(record, print_line)
        RecordingDisplay.statuses.append(self.progress.tasks[0].fields["status"])


@pytest.mark.parametrize("method", list(EXPECTED))
def test_headline_metrics_are_logged_and_shown(
    method, fast, chat_data, preference_data, tmp_path, letter_verifier, monkeypatch, capsys
):
    assert METHODS[method].headline_metrics == EXPECTED[method]
    RecordingDisplay.statuses = []
    monkeypatch.setattr(loop, "ProgressDisplay", RecordingDisplay)
    options = method_options(method, fast, chat_data, preference_data, tmp_path)
    result = train(method, max_steps=2, logging_steps=1, **fast, **options)
    records = read_metrics(result.output_dir)
    assert (result.output_dir / "checkpoints" / "step-000002").is_dir()  # the name docs/train.md gives
    printed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    assert len(records) == len(RecordingDisplay.statuses) == len(printed) == 2
    for record, status, line in zip(records, RecordingDisplay.statuses, printed, strict=True):
        shown = ("loss", *EXPECTED[method])
        for key in EXPECTED[method]:
            assert isinstance(record[key], float) and math.isfinite(record[key])
        assert [part.split()[0] for part in status.split("  ")] == [*shown, "lr"]
        assert [part.split()[0] for part in line.split(": ", 1)[1].split("  ")][: len(shown)] == list(shown)
