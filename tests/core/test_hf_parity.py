"""Our Llama-family forward against HF transformers on tiny random configs (fp32, max abs diff <= 1e-4)."""

from __future__ import annotations

import pytest
import torch

from llmkit.core.models.attention import DenseCausalAttention
from llmkit.core.models.pretrained import build_model, load_checkpoint, load_pretrained

transformers = pytest.importorskip("transformers")

LLAMA = dict(
    vocab_size=384,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    rms_norm_eps=1e-5,
)
ROPE = {
    "default": {"rope_type": "default", "rope_theta": 10000.0},
    "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
    "llama3": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    },
    "yarn": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 128},
}


def _save_hf(model, directory, tokenizer_source):
    model.save_pretrained(directory)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (directory / name).write_bytes((tokenizer_source / name).read_bytes())
    return directory


def _randomize(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)


def _our_logits(pretrained_model, input_ids):
    b, t = input_ids.shape
    positions = torch.arange(t).repeat(b)
    with torch.inference_mode():
        hidden = pretrained_model(input_ids.flatten(), positions, DenseCausalAttention(b, t))
        return pretrained_model.compute_logits(hidden).view(b, t, -1)


CASES = [
    ("llama-default", transformers.LlamaConfig, dict(LLAMA, rope_parameters=ROPE["default"])),
    ("llama-tied", transformers.LlamaConfig, dict(LLAMA, tie_word_embeddings=True, rope_parameters=ROPE["default"])),
    ("llama-mha", transformers.LlamaConfig, dict(LLAMA, num_key_value_heads=4, rope_parameters=ROPE["default"])),
    ("llama-linear", transformers.LlamaConfig, dict(LLAMA, rope_parameters=ROPE["linear"])),
    ("llama-llama3", transformers.LlamaConfig, dict(LLAMA, rope_parameters=ROPE["llama3"])),
    ("llama-yarn", transformers.LlamaConfig, dict(LLAMA, rope_parameters=ROPE["yarn"])),
    ("qwen2-bias", transformers.Qwen2Config, dict(LLAMA, rope_parameters=ROPE["default"])),
    ("mistral", transformers.MistralConfig, dict(LLAMA, sliding_window=None, rope_parameters=ROPE["default"])),
]


@pytest.mark.parametrize("name,config_cls,kwargs", CASES, ids=[c[0] for c in CASES])
def test_logits_match_transformers(name, config_cls, kwargs, tmp_path, tiny_model_dir):
    torch.manual_seed(0)
    hf_model = transformers.AutoModelForCausalLM.from_config(config_cls(**kwargs), dtype=torch.float32).eval()
    _randomize(hf_model, seed=len(name))
    if hf_model.config.tie_word_embeddings:
        hf_model.tie_weights()
    directory = _save_hf(hf_model, tmp_path / name, tiny_model_dir)
    ours = load_pretrained(directory).model
    input_ids = torch.randint(0, LLAMA["vocab_size"], (2, 300), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = hf_model(input_ids).logits
    actual = _our_logits(ours, input_ids)
    diff = (actual - expected).abs().max().item()
    assert diff <= 1e-4, f"{name}: max abs logit diff {diff:.3g}"


def test_bf16_forward_tracks_fp32(tiny_model_dir):
    """bf16 weights and activations stay close to the fp32 forward on the same checkpoint."""
    checkpoint = load_checkpoint(tiny_model_dir)
    fp32, bf16 = build_model(checkpoint, torch.float32), build_model(checkpoint, torch.bfloat16)
    input_ids = torch.randint(0, 384, (1, 64), generator=torch.Generator().manual_seed(2))
    reference, low = _our_logits(fp32, input_ids), _our_logits(bf16, input_ids)
    assert low.dtype == torch.float32
    scale = reference.abs().max().item()
    assert (low - reference).abs().max().item() < 0.05 * scale
    agreement = (low.argmax(-1) == reference.argmax(-1)).float().mean().item()
    assert agreement > 0.9


def test_gguf_roundtrip_matches_transformers(tmp_path, tiny_model_dir):
    """An HF model written as GGUF the way llama.cpp's converter does (permuted Q/K; F32, F16 and
    Q8_0 tensors) loads back to the same logits as transformers on the dequantized weights."""
    import gguf

    from .gguf_writer import write_gguf

    config = dict(LLAMA, rope_parameters=ROPE["default"])
    hf_model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**config)).eval()
    _randomize(hf_model, seed=7)
    tokenizer = load_checkpoint(tiny_model_dir).tokenizer.backend
    qtype = {"mlp": gguf.GGMLQuantizationType.Q8_0, "self_attn": gguf.GGMLQuantizationType.F16}
    stored = write_gguf(
        tmp_path / "tiny.gguf",
        config,
        hf_model.state_dict(),
        tokenizer,
        quantize=lambda name: next((t for key, t in qtype.items() if key in name), gguf.GGMLQuantizationType.F32),
    )
    hf_model.load_state_dict(stored)
    ours = load_pretrained(tmp_path / "tiny.gguf")
    assert ours.format == "gguf"
    assert ours.tokenizer.encode("The quick brown fox") == tokenizer.encode("The quick brown fox").ids
    input_ids = torch.randint(0, LLAMA["vocab_size"], (2, 40), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = hf_model(input_ids).logits
    diff = (_our_logits(ours.model, input_ids) - expected).abs().max().item()
    assert diff <= 1e-4, f"max abs logit diff {diff:.3g}"
