"""The vision tower and projector on the language model's path for weights kept as stored: an mmproj GGUF's F16
linears stay F16 blocks (`QuantizedLinear`, `ops.quantized_matmul`), `quantize=` quantizes the tower's linears
too, and the outputs equal a float32 model over the same (dequantized) weights within the kernels' tolerances."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from llmkit.core.models.quantized import QuantizedLinear
from llmkit.core.models.vision.pretrained import load_vision_language

from .vision_fixtures import build_tokenizer
from .vision_llava_fixtures import build_tiny_llava, write_mmproj, write_text_gguf

transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

MESSAGES = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "and"}, {"type": "image"}]},
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("stored")
    directory = build_tiny_llava(root / "hf", projector_act="gelu_pytorch_tanh", do_pad=True, seed=5)
    hf_model = transformers.LlavaForConditionalGeneration.from_pretrained(directory, dtype=torch.float32).eval()
    processor = transformers.AutoProcessor.from_pretrained(directory).image_processor
    text = write_text_gguf(root / "model.gguf", hf_model, build_tokenizer())
    mmproj = write_mmproj(root / "mmproj-f16.gguf", hf_model, processor.image_mean, processor.image_std, f16=True)
    return directory, text, mmproj


def vision_linears(model) -> dict[str, nn.Module]:
    """The linear layers of the tower and projector (everything but the language model), by name."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear | QuantizedLinear) and not name.startswith("text_model.")
    }


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got - expected).abs().max() / expected.abs().max())


def dense_twin(stored_model):
    """A copy of the model whose stored vision linears are float32 `nn.Linear`s over the dequantized weights: the
    reference the stored tower must equal up to summation order."""
    twin = copy.deepcopy(stored_model)
    for name, module in vision_linears(twin).items():
        if isinstance(module, QuantizedLinear):
            dense = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
            with torch.no_grad():
                dense.weight.copy_(module.stored.dequantize(torch.float32))
                if module.bias is not None:
                    dense.bias.copy_(module.bias)
            parent, _, child = name.rpartition(".")
            setattr(twin.get_submodule(parent), child, dense)
    return twin


def pixels(seed: int = 4) -> torch.Tensor:
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def images():
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)) for shape in ((40, 70, 3), (30, 30, 3))]


def test_an_f16_mmproj_tower_stays_f16_and_equals_the_dequantized_float32_load(files):
    _, text, mmproj = files
    stored = load_vision_language(text, mmproj=mmproj, weights="as-stored")
    dense = load_vision_language(text, mmproj=mmproj)  # every tensor dequantized to float32 torch tensors
    linears = vision_linears(stored.model)
    assert len(linears) == 3 * 6 + 2  # q, k, v, out, fc1, fc2 per layer; the projector's two
    assert {type(m) for m in linears.values()} == {QuantizedLinear}
    assert {m.stored.format.name for m in linears.values()} == {"f16"}
    assert all(isinstance(m, nn.Linear) for m in vision_linears(dense.model).values())
    with torch.inference_mode():
        got, expected = stored.model.image_features(pixels()), dense.model.image_features(pixels())
    assert relative_error(got, expected) < 1e-5  # float32 activations: summation order only
    prompt, dense_prompt = stored.chat_prompt(MESSAGES, images()), dense.chat_prompt(MESSAGES, images())
    ids = stored.generate_greedy(prompt, 32, stop_token_ids=())
    assert ids == dense.generate_greedy(dense_prompt, 32, stop_token_ids=())


def test_quantize_q8_0_quantizes_the_towers_whole_block_linears_and_logs_the_rest(files, caplog):
    directory, _, _ = files
    with caplog.at_level(logging.WARNING, logger="llmkit.core.models.vision.stored_linears"):
        quantized = load_vision_language(directory, quantize="q8_0")
    formats = {name: module.stored.format.name for name, module in vision_linears(quantized.model).items()}
    # fc2 maps the MLP width 48 back: 48 columns are not whole 32-element q8_0 blocks, so it stays float32.
    assert {name for name, f in formats.items() if f == "f32"} == {
        f"vision_tower.encoder.layers.{layer}.mlp.fc2" for layer in range(3)
    }
    assert set(formats.values()) == {"q8_0", "f32"}
    assert "3 vision linear layer(s) have a width that is not whole q8_0 blocks" in caplog.text
    reference = dense_twin(quantized.model)
    with torch.inference_mode():
        got, expected = quantized.model.image_features(pixels()), reference.image_features(pixels())
    assert relative_error(got, expected) < 1e-5


def test_int8_activations_in_the_tower_follow_their_reference(files, monkeypatch):
    directory, _, _ = files
    model = load_vision_language(directory, quantize="q8_0", activations="int8").model
    float_activations = load_vision_language(directory, quantize="q8_0").model
    assert {m.activations for m in vision_linears(model).values()} == {"int8"}
    with torch.inference_mode():
        got = model.image_features(pixels())
        monkeypatch.setenv("LLMKIT_KERNELS", "reference")  # the op's specification: round x per 32, then matmul
        specification = model.image_features(pixels())
        against_float = float_activations.image_features(pixels())
    assert relative_error(got, specification) < 1e-4
    # Activation rounding: ~0.5% a matmul (docs/kernels.md), through three layers and the projector.
    assert 1e-4 < relative_error(got, against_float) < 3e-2


def test_a_dense_load_keeps_the_tower_dense_in_its_dtype(files):
    directory, _, _ = files
    model = load_vision_language(directory, dtype="bfloat16").model
    assert all(isinstance(m, nn.Linear) and m.weight.dtype == torch.bfloat16 for m in vision_linears(model).values())


def test_a_4_bit_quantize_leaves_the_tower_at_q8_0_unless_vision_quantize_says_otherwise(files, caplog):
    directory, _, _ = files
    with caplog.at_level(logging.WARNING, logger="llmkit.core.models.vision.stored_linears"):
        default = load_vision_language(directory, quantize="q4_0")
    assert "quantize=q4_0: the vision tower and projector quantize to q8_0" in caplog.text
    assert {m.stored.format.name for m in vision_linears(default.model).values()} == {"q8_0", "f32"}
    assert default.model.text_model.layers[0].mlp.up_proj.stored.format.name == "q4_0"
    forced = load_vision_language(directory, quantize="q4_0", vision_quantize="q4_0")
    assert {m.stored.format.name for m in vision_linears(forced.model).values()} == {"q4_0", "f32"}
    with pytest.raises(ValueError, match="vision_quantize needs weights kept as stored"):
        load_vision_language(directory, vision_quantize="q8_0")
