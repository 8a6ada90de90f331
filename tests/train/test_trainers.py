"""Each method end to end on a tiny model through the Python API and the CLI: it runs, learns, logs, saves."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from llmkit.core import load_pretrained
from llmkit.train import train
from llmkit.train.errors import ConfigError
from llmkit.train.methods import load_reward_model
from llmkit.train.metrics import read_metrics


def losses(result) -> list[float]:
    return [r["loss"] for r in read_metrics(result.output_dir) if "loss" in r]


def test_sft_learns_and_saves_a_loadable_model(fast, chat_data):
    result = train("sft", data=str(chat_data), max_steps=12, batch_size=4, lr_scheduler="constant", **fast)
    values = losses(result)
    assert len(values) == 12 and values[-1] < 0.6 * values[0]
    assert load_pretrained(result.final_dir / "model").config.num_layers == 2
    record = read_metrics(result.output_dir)[-1]
    for key in ("loss", "lr", "grad_norm", "tokens", "tokens_per_s", "step_time", "epoch"):
        assert key in record
    assert json.loads((result.output_dir / "data_report.json").read_text())["train"]["kept"] == 12


def test_sft_lora_packing_checkpointing_bf16(fast, chat_data):
    result = train(
        "sft",
        data=str(chat_data),
        max_steps=4,
        batch_size=2,
        gradient_accumulation_steps=2,
        packing=True,
        lora_rank=4,
        gradient_checkpointing=True,
        bf16=True,
        eval_fraction=0.25,
        eval_steps=2,
        **fast,
    )
    assert (result.final_dir / "adapters" / "adapter_model.safetensors").is_file()
    assert (result.final_dir / "model" / "model.safetensors").is_file()  # merged copy
    records = read_metrics(result.output_dir)
    assert records[0]["step"] == 0 and "eval_loss" in records[0]  # evaluated before training
    assert "eval_loss" in records[-1]


def test_reward_model_learns_preferences(fast, preference_data):
    result = train("reward", data=str(preference_data), max_steps=10, batch_size=4, eval_fraction=0.25, **fast)
    record = read_metrics(result.output_dir)[-1]
    assert record["accuracy"] == 1.0 and record["eval_accuracy"] == 1.0
    model = load_reward_model(result.output_dir, dtype="float32")
    tokenizer = model.pretrained.tokenizer
    prompt = model.pretrained.chat_prompt([{"role": "user", "content": "Is 4 even?"}])
    good = prompt + tokenizer.encode("yes<|im_end|>")
    bad = prompt + tokenizer.encode("the quick brown fox<|im_end|>")
    scores = model.score([good, bad], pad_id=0)
    assert scores[0] > scores[1]


def test_dpo_raises_margin_live_and_cached_reference(fast, preference_data, tmp_path):
    cache = tmp_path / "ref.safetensors"
    options = {**fast, "data": str(preference_data), "max_steps": 6, "batch_size": 4, "eval_fraction": 0.25}
    live = train("dpo", **options)
    cached = train("dpo", **{**options, "output_dir": str(tmp_path / "cached"), "reference_cache": str(cache)})
    assert cache.is_file()
    assert losses(live) == pytest.approx(losses(cached), rel=1e-4)
    first, last = read_metrics(live.output_dir)[0], read_metrics(live.output_dir)[-1]
    assert first["reward_margin"] == pytest.approx(0.0, abs=1e-6) and last["reward_margin"] > 0.1
    assert last["eval_accuracy"] > 0.5
    again = train("dpo", **{**options, "output_dir": str(tmp_path / "again"), "reference_cache": str(cache)})
    assert losses(again) == pytest.approx(losses(cached), rel=1e-4)


def test_dpo_reference_cache_is_validated(fast, preference_data, chat_data, tmp_path):
    cache = tmp_path / "ref.safetensors"
    options = {**fast, "data": str(preference_data), "max_steps": 1, "batch_size": 4, "reference_cache": str(cache)}
    train("dpo", **options)
    with pytest.raises(Exception, match="other tokenized data"):
        train("dpo", **{**options, "output_dir": str(tmp_path / "b"), "max_length": 12, "truncation": "truncate"})
    with pytest.raises(Exception, match="other bf16"):
        train("dpo", **{**options, "output_dir": str(tmp_path / "c"), "bf16": True})


@pytest.mark.parametrize("loss_type", ["ipo", "hinge"])
def test_dpo_variants_and_lora_reference(fast, preference_data, loss_type):
    result = train(
        "dpo", data=str(preference_data), max_steps=3, batch_size=4, loss_type=loss_type, lora_rank=4, **fast
    )
    values = losses(result)
    assert values[-1] < values[0]


def test_cli_with_yaml_and_flag_overrides(tiny_model_dir, chat_data, tmp_path):
    config = tmp_path / "sft.yaml"
    config.write_text(
        yaml.safe_dump(
            {"model": str(tiny_model_dir), "data": str(chat_data), "max_steps": 5, "batch_size": 2, "progress": False}
        )
    )
    out = tmp_path / "run"
    command = [sys.executable, "-m", "llmkit.core.cli", "train", "sft", "--config", str(config)]
    done = subprocess.run([*command, "--max-steps", "2", "--output-dir", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(read_metrics(out)) == 2
    again = subprocess.run([*command, "--output-dir", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "already holds a run" in again.stderr and "Traceback" not in again.stderr
    config.write_text("learning_rat: 0.1\n")
    bad = subprocess.run(command, capture_output=True, text=True)
    assert bad.returncode == 2 and "did you mean learning_rate" in bad.stderr
    helped = subprocess.run([*command[:5], "--help"], capture_output=True, text=True)
    assert "--gradient-accumulation-steps" in helped.stdout and "--lora-rank" in helped.stdout


def test_bad_options_fail_clearly(fast, chat_data):
    with pytest.raises(ConfigError, match="lr_scheduler must be one of"):
        train("sft", data=str(chat_data), lr_scheduler="exponential", **fast)
    with pytest.raises(ConfigError, match="unknown training method"):
        train("kto", data=str(chat_data))
    with pytest.raises(ConfigError, match="expects int"):
        train("sft", data=str(chat_data), max_steps="many", **fast)
