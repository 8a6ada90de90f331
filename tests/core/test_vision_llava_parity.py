"""Our LLaVA (CLIP or SigLIP tower, MLP projector, Llama decoder) against transformers on tiny random models saved
with `save_pretrained` (float32)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from llmkit.core.errors import InvalidParameterError, ModelFormatError
from llmkit.core.models.pretrained import find_loader, load_pretrained
from llmkit.core.models.vision.pretrained import load_vision_language

from .vision_llava_fixtures import all_logits, build_tiny_llava

transformers = pytest.importorskip("transformers")

ATOL = 1e-4


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    directory = build_tiny_llava(tmp_path_factory.mktemp("llava"))
    hf_model = transformers.LlavaForConditionalGeneration.from_pretrained(directory, dtype=torch.float32).eval()
    processor = transformers.AutoProcessor.from_pretrained(directory)
    return directory, hf_model, processor, load_vision_language(directory)


def _image(width, height, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_the_llava_loader_is_registered_before_the_text_loader(tiny_llava):
    directory = tiny_llava[0]
    assert find_loader(directory)[0] == "llava"
    text_only = load_pretrained(directory)  # the language model alone
    assert text_only.config.num_layers == 2


def test_vision_tower_hidden_states_match(tiny_llava):
    _, hf_model, _, ours = tiny_llava
    pixel_values = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = hf_model.model.vision_tower(pixel_values, output_hidden_states=True).hidden_states
        got = ours.model.vision_tower.hidden_states(pixel_values, (0, 1, 2, 3))
    assert len(expected) == 4
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.shape == theirs.shape == (2, 17, 32)  # 16 patches + the class token
        assert (mine - theirs).abs().max() <= ATOL


def test_projector_and_image_features_match(tiny_llava):
    _, hf_model, _, ours = tiny_llava
    features = torch.randn(3, 16, 32, generator=torch.Generator().manual_seed(2))
    pixel_values = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        projected = (hf_model.model.multi_modal_projector(features), ours.model.multi_modal_projector(features))
        expected = torch.stack(hf_model.model.get_image_features(pixel_values).pooler_output)
        got = ours.model.image_features(pixel_values)
    assert projected[0].shape == projected[1].shape == (3, 16, 64)
    assert (projected[0] - projected[1]).abs().max() <= ATOL
    assert got.shape == expected.shape == (2, 16, 64)
    assert (got - expected).abs().max() <= ATOL


@pytest.mark.parametrize("size", [(20, 20), (70, 40), (40, 100)], ids=["small", "wide", "tall"])
def test_logits_match_for_an_image_and_text_prompt(tiny_llava, size):
    _, hf_model, processor, ours = tiny_llava
    image = _image(*size, seed=size[0])
    text = "User: what shape is this?<image> a red circle<end_of_utterance>\nAssistant:"
    inputs = processor(text=text, images=[image], return_tensors="pt")
    prompt = ours.text_prompt(text, [image])
    assert prompt.token_ids == inputs["input_ids"][0].tolist()
    assert [span.length for span in prompt.spans] == [16]
    with torch.inference_mode():
        expected = hf_model(**inputs).logits[0]
        got = all_logits(ours.model, prompt)
    assert (got - expected).abs().max() <= ATOL


def test_greedy_ids_match_for_32_tokens(tiny_llava):
    _, hf_model, processor, ours = tiny_llava
    images = [_image(70, 40, seed=3), _image(30, 30, seed=4)]
    content = [{"type": "image"}, {"type": "text", "text": "and"}, {"type": "image"}, {"type": "text", "text": "?"}]
    messages = [{"role": "user", "content": content}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=text, images=images, return_tensors="pt")
    with torch.inference_mode():
        expected = hf_model.generate(
            **inputs, max_new_tokens=32, min_new_tokens=32, do_sample=False, eos_token_id=None, pad_token_id=0
        )[0, inputs["input_ids"].shape[1] :].tolist()
    prompt = ours.chat_prompt(messages, images)
    assert prompt.token_ids == inputs["input_ids"][0].tolist()
    assert len(expected) == 32
    assert ours.generate_greedy(prompt, max_new_tokens=32, stop_token_ids=()) == expected


def test_every_detail_level_costs_the_same_one_image(tiny_llava):
    *_, ours = tiny_llava
    image = _image(200, 50, seed=5)
    assert {ours.num_image_tokens(image, detail) for detail in ("low", "high", "auto")} == {16}
    with pytest.raises(InvalidParameterError, match="detail"):
        ours.num_image_tokens(image, "ultra")


def test_siglip_tower_with_several_feature_layers_and_the_full_strategy(tmp_path):
    """SigLIP (no class token, patch bias, GELU-tanh), hidden states of layers 1 and 3 concatenated, every token."""
    directory = build_tiny_llava(tmp_path / "siglip", tower="siglip", feature_layer=[-3, -1], strategy="full")
    hf_model = transformers.LlavaForConditionalGeneration.from_pretrained(directory, dtype=torch.float32).eval()
    processor = transformers.AutoProcessor.from_pretrained(directory)
    ours = load_vision_language(directory)
    assert ours.model.config.feature_layers == (1, 3)
    image = _image(50, 30, seed=7)
    text = "User:<image> what?<end_of_utterance>\nAssistant:"
    inputs = processor(text=text, images=[image], return_tensors="pt")
    prompt = ours.text_prompt(text, [image])
    assert prompt.token_ids == inputs["input_ids"][0].tolist()
    assert prompt.num_image_tokens == 16
    with torch.inference_mode():
        expected = hf_model(**inputs).logits[0]
        got = all_logits(ours.model, prompt)
    assert (got - expected).abs().max() <= ATOL


def _copy_with_config(directory, tmp_path, **changes):
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    raw = json.loads((copy / "config.json").read_text())
    raw.update(changes)
    (copy / "config.json").write_text(json.dumps(raw))
    return copy


def test_an_image_seq_length_the_tower_does_not_make_is_refused(tiny_llava, tmp_path):
    copy = _copy_with_config(tiny_llava[0], tmp_path, image_seq_length=17)
    with pytest.raises(ModelFormatError, match="17 image tokens per image"):
        load_vision_language(copy)


def test_an_unknown_projector_activation_is_refused(tiny_llava, tmp_path):
    copy = _copy_with_config(tiny_llava[0], tmp_path, projector_hidden_act="swish")
    with pytest.raises(ModelFormatError, match="projector activation 'swish'"):
        load_vision_language(copy)
