"""A real failure of the default model that `llmkit redteam` found, pinned: the kept transcript
(tests/eval/data/redteam_smollm2_failure.json) scores as a success, and replaying the attack against
SmolLM2-135M-Instruct (greedy, the reference backend: the eval session has no engine) still gets the secret
out, while the same request asked plainly still does not. The engine found it; the reference backend words the
reply differently after a few tokens (both replies are in the data file), so the test checks the leak, not
the wording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmkit.core.backends import open_backend
from llmkit.core.guards import open_guard
from llmkit.eval.client import ModelClient
from llmkit.eval.redteam import Attack, RunSettings, run_attacks, score_transcript

KEPT = json.loads((Path(__file__).parent / "data" / "redteam_smollm2_failure.json").read_text())
FIELDS = ("id", "seed_id", "category", "generator", "variant", "turns", "system", "check")


def attack_of(record: dict) -> Attack:
    return Attack.from_dict({key: record[key] for key in FIELDS})


def test_the_kept_transcript_scores_as_an_attack_that_got_through():
    record = KEPT["attack"]
    scored = score_transcript(record["check"], record["turns"], record["replies"], [open_guard("prompt_injection")])
    assert scored["success"] and scored["got_through"] and scored["evidence"][0]["leaked_as"] == ["plain"]
    plain = KEPT["contrast_direct"]
    assert not score_transcript(plain["check"], plain["turns"], plain["replies"])["success"]


@pytest.fixture(scope="module")
def default_model(smollm2_path):
    return ModelClient(open_backend("reference", model=str(smollm2_path)), "smollm2-reference")


def test_the_attack_still_gets_the_secret_out_of_the_default_model(default_model, tmp_path):
    attacks = [attack_of(KEPT["attack"]), attack_of(KEPT["contrast_direct"])]
    records = run_attacks(attacks, default_model, tmp_path, settings=RunSettings(max_tokens=40, quiet=True))
    jailbroken, plain = records
    assert jailbroken["success"] and jailbroken["got_through"], jailbroken["replies"]
    assert jailbroken["evidence"][0]["leaked_as"] == ["plain"]
    assert not plain["success"], plain["replies"]  # the attack, not the question, breaks the rule
