"""The default model with its GGUF weights as stored, on the native kernels, against llama.cpp-checked
golden ids (../shared/golden): float32 activations reproduce every golden token; int8 activations (the
engine's default) are reported like llama.cpp's agreement, token of first divergence per prompt."""

from __future__ import annotations

import pytest
import torch

from llmkit.core import SamplingParams, generate, load_pretrained
from llmkit.core.models.attention import DenseCausalAttention
from llmkit.core.models.quantized import set_activations

GREEDY_32 = SamplingParams(temperature=0, max_tokens=32, ignore_eos=True, skip_special_tokens=False)


@pytest.fixture(scope="module")
def as_stored(smollm2_path):
    pretrained = load_pretrained(smollm2_path, weights="as-stored")
    assert pretrained.model.weights_as_stored
    return pretrained


def test_float32_activations_reproduce_every_golden_token(as_stored, golden):
    set_activations(as_stored.model, "float32")
    outputs = generate(as_stored.model, as_stored.tokenizer, [c["ids_in"] for c in golden["cases"]], GREEDY_32)
    for case, output in zip(golden["cases"], outputs, strict=True):
        assert output.completions[0].token_ids == case["ids_out"], case["prompt"]


def test_int8_activations_first_divergence_report(as_stored, golden, record_property, capsys):
    set_activations(as_stored.model, "int8")
    try:
        outputs = generate(as_stored.model, as_stored.tokenizer, [c["ids_in"] for c in golden["cases"]], GREEDY_32)
    finally:
        set_activations(as_stored.model, "float32")
    report = {}
    for case, output in zip(golden["cases"], outputs, strict=True):
        ids = output.completions[0].token_ids
        report[case["prompt"]] = next(
            (i for i, (a, b) in enumerate(zip(ids, case["ids_out"], strict=False)) if a != b), None
        )
    record_property("int8_first_divergence", report)
    with capsys.disabled():
        print(f"\nint8 activations: first divergence from the golden ids (None = all 32 equal): {report}")
    # Near-ties flip (the France prompt's first token: 25.33 vs 25.24 in float32), so the ids are reported,
    # and what is asserted is the size of the change: next-token logits within 8% of float32's (4.4% seen).
    for case in golden["cases"]:
        logits = {}
        for mode in ("float32", "int8"):
            set_activations(as_stored.model, mode)
            logits[mode] = last_logits(as_stored.model, case["ids_in"])
        set_activations(as_stored.model, "float32")
        change = (logits["int8"] - logits["float32"]).abs().max() / logits["float32"].abs().max()
        assert change < 0.08, (case["prompt"], float(change))


def last_logits(model, ids):
    positions = torch.arange(len(ids))
    with torch.inference_mode():
        hidden = model(torch.tensor(ids), positions, DenseCausalAttention(1, len(ids)))
        return model.compute_logits(hidden[-1:])[0]
