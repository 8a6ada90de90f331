"""The third-party-style plugin `llmkit-typical`, installed from its own pyproject into this venv."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from llmkit.core import SamplingParams, generate
from llmkit.core.plugins import registry
from llmkit.core.sampling.sampler import SamplingBatch, filtered_logits


def test_found_through_its_entry_point():
    samplers = registry("samplers")
    assert "typical" in samplers
    assert samplers.owner("typical").startswith("llmkit-typical")


def test_listed_by_the_cli():
    result = subprocess.run([sys.executable, "-m", "llmkit.core.cli", "plugins"], capture_output=True, text=True)
    assert result.returncode == 0 and "llmkit-typical" in result.stdout and "typical" in result.stdout


@pytest.mark.parametrize("mass", [0.2, 0.5, 0.9, 0.99])
def test_matches_transformers_typical_warper(mass):
    transformers = pytest.importorskip("transformers")
    logits = torch.randn(16, 500, generator=torch.Generator().manual_seed(int(mass * 100))) * 2
    params = [SamplingParams(logits_processors=[("typical", {"mass": mass})])] * 16
    ours = filtered_logits(logits, SamplingBatch.build(params, list(range(16)), [[]] * 16, None, 500))
    expected = transformers.TypicalLogitsWarper(mass=mass)(torch.zeros(16, 1, dtype=torch.long), logits.clone())
    assert torch.equal(torch.isfinite(ours), torch.isfinite(expected))
    torch.testing.assert_close(ours[torch.isfinite(ours)], expected[torch.isfinite(expected)])


def test_per_row_arguments_in_one_batch():
    logits = torch.randn(3, 200, generator=torch.Generator().manual_seed(4)) * 2
    params = [
        SamplingParams(logits_processors=[("typical", {"mass": 0.3})]),
        SamplingParams(),
        SamplingParams(logits_processors=[("typical", {"mass": 0.95})]),
    ]
    final = filtered_logits(logits, SamplingBatch.build(params, [0, 1, 2], [[]] * 3, None, 200))
    kept = torch.isfinite(final).sum(-1).tolist()
    assert kept[1] == 200 and kept[0] < kept[2] < 200


def test_bad_arguments_fail_when_the_request_is_made():
    from llmkit.core import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="mass must be in"):
        SamplingParams(logits_processors=[("typical", {"mass": 1.5})])
    with pytest.raises(InvalidParameterError, match="unknown arguments"):
        SamplingParams(logits_processors=[("typical", {"p": 0.5})])


def test_used_by_name_in_generation(tiny):
    params = SamplingParams(temperature=1.0, seed=5, max_tokens=16, ignore_eos=True, logits_processors=["typical"])
    out = generate(tiny.model, tiny.tokenizer, ["The quick"], params)[0].completions[0]
    assert len(out.token_ids) == 16
