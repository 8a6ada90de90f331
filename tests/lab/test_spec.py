"""Experiment specs: arms that differ from the base in anything but the named factors are refused."""

from __future__ import annotations

import pytest

from llmkit.lab.errors import LabError
from llmkit.lab.spec import parse_experiment

BASE = {"train": {"model": "m", "data": "d.jsonl", "lora_rank": 4, "learning_rate": 1e-3}, "eval": {"tasks": ["t"]}}


def test_grid_arms_differ_only_in_the_factors():
    experiment = parse_experiment({"name": "x", "base": BASE, "factors": {"train.lora_rank": [4, 16]}, "seeds": [0, 1]})
    assert [a.name for a in experiment.arms] == ["lora_rank=4", "lora_rank=16"]
    first, second = (a.config for a in experiment.arms)
    assert {k for k in first if first[k] != second[k]} == {"train.lora_rank"}
    assert experiment.reference.name == "lora_rank=4"


def test_an_arm_with_an_extra_difference_is_refused():
    spec = {
        "name": "x",
        "base": BASE,
        "factors": {"train.lora_rank": [4, 16]},
        "arms": [
            {"name": "r4", "set": {"train.lora_rank": 4}},
            {"name": "r16", "set": {"train.lora_rank": 16, "train.learning_rate": 2e-3}},
        ],
    }
    with pytest.raises(LabError) as err:
        parse_experiment(spec)
    assert str(err.value) == (
        "spec: arm 'r16' differs from the base in train.learning_rate = 0.002 (base: 0.001), which is not a "
        "named factor (factors: train.lora_rank); name it as a factor or move it into the base"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"factors": {"train.lora_rank": [4]}}, "needs two or more distinct values"),
        ({"factors": {"train.seed": [0, 1]}}, "train.seed is set per run from `seeds`"),
        ({"factors": {"eval.fewshot": [0, 1]}}, "factor 'eval.fewshot' is not a `train.` or `eval.` option"),
        ({"base": {"serve": {}}}, "base holds `train` and/or `eval` sections"),
        ({"sedes": [0]}, "sedes: Extra inputs are not permitted"),
        (
            {"arms": [{"name": "a", "set": {"train.lora_rank": 8}}, {"name": "b", "set": {"train.lora_rank": 8}}]},
            "arms 'a' and 'b' set every factor alike",
        ),
    ],
)
def test_bad_specs_say_what_is_wrong(change, message):
    spec = {"name": "x", "base": BASE, "factors": {"train.lora_rank": [4, 16]}, **change}
    with pytest.raises(LabError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_experiment(spec)


def test_train_options_are_checked_before_anything_runs():
    from llmkit.lab.runner import check_arms
    from llmkit.train.errors import ConfigError

    spec = {
        "name": "x",
        "base": {**BASE, "train": {**BASE["train"], "lora_rnak": 2}},
        "factors": {"train.lora_rank": [4, 16]},
    }
    with pytest.raises(ConfigError, match=r"unknown option 'lora_rnak' for sft \(did you mean lora_rank\?\)"):
        check_arms(parse_experiment(spec))
    trained_and_named = {**BASE, "eval": {"tasks": ["t"], "model": "other"}}
    with pytest.raises(LabError, match="eval.model is the trained model when the spec trains"):
        check_arms(parse_experiment({"name": "x", "base": trained_and_named, "factors": {"train.lora_rank": [4, 16]}}))
