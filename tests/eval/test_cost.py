"""`llmkit cost` arithmetic and latency measurement."""

from __future__ import annotations

import json

import pytest

from llmkit.eval.cost import Price, Workload, load_price_table, measure_latency, workload_cost, workload_latency
from llmkit.eval.errors import EvalError


def test_cost_by_hand():
    workload = Workload(requests=1000, prompt_tokens=2000, completion_tokens=500, cache_hit_rate=0.25)
    cost = workload_cost(workload, Price(input=3.0, output=15.0, cached_input=0.3))
    # prompt 2e6 tokens: 1.5e6 fresh at $3/M = 4.5 ; 0.5e6 cached at $0.3/M = 0.15 ; output 5e5 at $15/M = 7.5
    assert cost["input"] == pytest.approx(4.5) and cost["cached_input"] == pytest.approx(0.15)
    assert cost["output"] == pytest.approx(7.5) and cost["total"] == pytest.approx(12.15)
    assert cost["per_request"] == pytest.approx(0.01215)


def test_latency_by_hand():
    latency = workload_latency(Workload(10, 100, 50), ttft_s=0.2, tpot_s=0.02, concurrency=4)
    assert latency["request_s"] == pytest.approx(1.2) and latency["total_s"] == pytest.approx(3 * 1.2)


def test_price_table_and_errors(tmp_path):
    (tmp_path / "p.yaml").write_text("models:\n  small: {input: 0.1, output: 0.4}\n")
    assert load_price_table(tmp_path / "p.yaml") == {"small": Price(0.1, 0.4)}
    (tmp_path / "bad.yaml").write_text("prices: 3\n")
    with pytest.raises(EvalError, match="expected `models:"):
        load_price_table(tmp_path / "bad.yaml")
    with pytest.raises(EvalError, match="cache hit rate"):
        Workload(1, 1, 1, cache_hit_rate=2)


def test_measured_ttft_and_tpot_on_a_tiny_model(tiny_backend):
    ttft, tpot = measure_latency(tiny_backend, prompt_tokens=20, completion_tokens=5, repeats=1)
    assert ttft > 0 and tpot >= 0


def test_cost_command_prints_json(tmp_path, capsys):
    from llmkit.core.cli import main

    (tmp_path / "p.yaml").write_text("models:\n  a: {input: 1, output: 2}\n")
    code = main(["cost", "--prices", str(tmp_path / "p.yaml"), "--requests", "10", "--prompt-tokens", "100",
                 "--completion-tokens", "10", "--ttft-ms", "100", "--tpot-ms", "10", "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert (
        code == 0
        and report["costs"]["a"]["total"] == pytest.approx(0.0012)
        and report["latency"]["request_s"] == pytest.approx(0.2)
    )
