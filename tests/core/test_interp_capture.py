"""Activation capture and the logit lens on core's model: HF transformers' hidden states on a tiny random
Llama, the lens's last row equal to the model's logits, and capture leaving the forward untouched."""

from __future__ import annotations

import pytest
import torch

from llmkit.core.errors import InvalidParameterError
from llmkit.core.interp import all_keys, capture, capture_activations, logit_lens, top_tokens_per_layer
from llmkit.core.models.attention import DenseCausalAttention
from llmkit.core.models.pretrained import load_pretrained

transformers = pytest.importorskip("transformers")

CONFIG = dict(
    vocab_size=384,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
)


@pytest.fixture(scope="module")
def hf_and_ours(tmp_path_factory, tiny_model_dir):
    torch.manual_seed(0)
    hf_model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**CONFIG)).eval()
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for param in hf_model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    directory = tmp_path_factory.mktemp("interp-hf")
    hf_model.save_pretrained(directory)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (directory / name).write_bytes((tiny_model_dir / name).read_bytes())
    return hf_model, load_pretrained(directory).model


def _logits(model, ids):
    with torch.inference_mode():
        hidden = model(ids, torch.arange(len(ids)), DenseCausalAttention(1, len(ids)))
        return model.compute_logits(hidden)


def test_residuals_match_hf_hidden_states(hf_and_ours):
    hf_model, ours = hf_and_ours
    ids = torch.randint(0, CONFIG["vocab_size"], (1, 24), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = hf_model(ids, output_hidden_states=True).hidden_states
    layers = CONFIG["num_hidden_layers"]
    assert len(expected) == layers + 1
    resid = capture_activations(ours, [ids[0].tolist()], positions="all", sites=["resid"])
    for layer in range(layers):  # HF's hidden_states[i] is the residual entering layer i
        diff = (resid[(layer, "resid")][0] - expected[layer][0]).abs().max().item()
        assert diff <= 1e-4, f"layer {layer}: {diff:.3g}"
    # HF's last entry has the final norm applied; ours is the raw residual after the last layer.
    last = ours.norm(resid[(layers, "resid")][0])
    assert (last - expected[layers][0]).abs().max().item() <= 1e-4


def test_attn_and_mlp_outputs_sum_to_the_residual_update(hf_and_ours):
    _, ours = hf_and_ours
    ids = list(range(5, 25))
    acts = capture_activations(ours, [ids], positions="all")
    assert set(acts) == set(all_keys(ours))
    for layer in range(ours.config.num_layers):
        update = acts[(layer, "attn")] + acts[(layer, "mlp")]
        torch.testing.assert_close(acts[(layer, "resid")] + update, acts[(layer + 1, "resid")])


def test_positions_select_tokens_per_prompt_under_left_padding(hf_and_ours):
    _, ours = hf_and_ours
    short, long = list(range(10, 16)), list(range(30, 45))
    keys = [(2, "resid"), (1, "mlp")]
    batched = capture_activations(ours, [short, long], keys, positions=[0, -1])
    for row, prompt in enumerate([short, long]):
        alone = capture_activations(ours, [prompt], keys, positions="all")
        for key in keys:
            assert batched[key].shape == (2, 2, ours.config.hidden_size)
            torch.testing.assert_close(batched[key][row, 0], alone[key][0, 0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(batched[key][row, 1], alone[key][0, -1], atol=1e-5, rtol=1e-5)
    last = capture_activations(ours, [short, long], keys, positions="last")
    torch.testing.assert_close(last[(2, "resid")][:, 0], batched[(2, "resid")][:, 1])


def test_bad_requests_fail_clearly(hf_and_ours):
    _, ours = hf_and_ours
    layers = ours.config.num_layers
    with pytest.raises(InvalidParameterError, match="outside"):
        capture_activations(ours, [[1, 2]], [(layers + 1, "resid")])
    with pytest.raises(InvalidParameterError, match="outside"):
        capture_activations(ours, [[1, 2]], [(layers, "mlp")])
    with pytest.raises(InvalidParameterError, match="unknown site"):
        capture_activations(ours, [[1, 2]], [(0, "keys")])
    with pytest.raises(InvalidParameterError, match="one length"):
        capture_activations(ours, [[1, 2], [1, 2, 3]], positions="all")
    with pytest.raises(InvalidParameterError, match="outside a prompt"):
        capture_activations(ours, [[1, 2]], positions=[5])


def test_logit_lens_last_layer_is_the_models_logits(hf_and_ours):
    _, ours = hf_and_ours
    ids = list(range(40, 60))
    lens = logit_lens(ours, ids, positions="all")
    assert lens.shape == (ours.config.num_layers + 1, len(ids), CONFIG["vocab_size"])
    assert torch.equal(lens[-1], _logits(ours, torch.tensor(ids)))
    assert not torch.allclose(lens[0], lens[-1])


def test_top_tokens_per_layer(tiny):
    ids = tiny.tokenizer.encode("The capital of France is", add_special_tokens=True)
    rows = top_tokens_per_layer(tiny.model, tiny.tokenizer, ids, top=3)
    assert [r.layer for r in rows] == list(range(tiny.model.config.num_layers + 1))
    final = _logits(tiny.model, torch.tensor(ids))[-1].softmax(-1)
    assert rows[-1].tokens[0] == tiny.tokenizer.decode([int(final.argmax())], skip_special_tokens=False)
    assert rows[-1].probabilities[0] == pytest.approx(float(final.max()), rel=1e-5)


def test_capture_leaves_the_forward_bit_identical_and_detaches(hf_and_ours):
    _, ours = hf_and_ours
    ids = torch.arange(3, 30)
    before = _logits(ours, ids)
    with capture(ours, positions="last") as record:
        during = _logits(ours, ids)
    after = _logits(ours, ids)
    assert torch.equal(before, during) and torch.equal(before, after)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in ours.modules())
    rows = record.tensors()
    assert rows[(0, "resid")].shape == (1, ours.config.hidden_size)


def test_capture_removes_hooks_when_the_forward_fails(hf_and_ours):
    _, ours = hf_and_ours
    with pytest.raises(InvalidParameterError, match="outside this forward"), capture(ours, positions=[100]):
        _logits(ours, torch.arange(3, 10))
    assert all(not m._forward_hooks for m in ours.modules())


def test_capture_records_each_decode_step_of_generate(tiny):
    from llmkit.core.generate import generate
    from llmkit.core.sampling import SamplingParams

    with capture(tiny.model, [(1, "resid")], positions="last") as record:
        out = generate(tiny.model, tiny.tokenizer, ["Hello"], SamplingParams(max_tokens=4, temperature=0))
    steps = len(out[0].completions[0].token_ids)
    assert len(record.calls[(1, "resid")]) == steps  # the prefill, then one forward per token but the last
