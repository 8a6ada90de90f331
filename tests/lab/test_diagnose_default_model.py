"""`llmkit diagnose` end to end on the default model (SmolLM2-135M-Instruct, reference backend, greedy): a
12-digit product it cannot compute at any prompt is diagnosed as a capability failure (layer 3)."""

from __future__ import annotations

import json

from llmkit.core.cli import main


def test_a_product_past_the_default_model_is_layer_3(tmp_path, smollm2_path, capsys):
    cases = tmp_path / "cases.jsonl"
    record = {
        "id": "product",
        "system": "You are a careful calculator.",
        "prompt": "What is 734829 multiplied by 581937? Reply with the number only.",
        "expected": str(734829 * 581937),
    }
    cases.write_text(json.dumps(record) + "\n")
    out = tmp_path / "diagnosis.json"
    argv = ["diagnose", str(cases), "--model", str(smollm2_path), "--device", "cpu", "--samples", "2"]
    assert main([*argv, "--max-tokens", "16", "--output", str(out), "--quiet"]) == 0

    report = json.loads(out.read_text())
    assert report["verdict"] == {
        "layer": 3,
        "layer_name": "capability",
        "intervention": None,
        "cases": 1,
        "of": 1,
        "fix": report["verdict"]["fix"],
        "per_layer": {"3": 1},
    }
    outcomes = report["cases"][0]["outcomes"]
    ran = {name: o for name, o in outcomes.items() if "skipped" not in o}
    assert set(ran) == {"baseline", "stripped", "chain_of_thought", "more_samples"}
    assert all(o["replies"] and all(r.strip() for r in o["replies"]) for o in ran.values())  # the model did reply
    assert outcomes["more_samples"]["samples"] == 2 and not any(o["passed"] for o in ran.values())
    assert outcomes["structured"] == {"skipped": "the case names no output structure (JSONL 'choices' or 'schema')"}
    printed = capsys.readouterr().out
    assert "verdict: layer 3 (capability) for 1 of 1 reproduced failure(s), no intervention helped" in printed
    assert f"report: {out}" in printed
