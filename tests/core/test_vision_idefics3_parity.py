"""Our Idefics3 (SigLIP tower, pixel-shuffle connector, Llama decoder) against transformers on a tiny random
model saved with `save_pretrained` (float32)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from llmkit.core.models.attention import DenseCausalAttention
from llmkit.core.models.pretrained import find_loader, load_pretrained
from llmkit.core.models.vision.pretrained import load_vision_language

from .vision_fixtures import build_tiny_idefics3, build_tiny_smolvlm

transformers = pytest.importorskip("transformers")

ATOL = 1e-4


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    directory = build_tiny_idefics3(tmp_path_factory.mktemp("idefics3"))
    hf_model = transformers.Idefics3ForConditionalGeneration.from_pretrained(directory, dtype=torch.float32).eval()
    processor = transformers.AutoProcessor.from_pretrained(directory)
    return directory, hf_model, processor, load_vision_language(directory)


def _image(width, height, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _hf_inputs(processor, text, images):
    return processor(text=text, images=images, return_tensors="pt")


def test_loader_is_registered_before_the_text_loader(tiny_vlm):
    directory = tiny_vlm[0]
    assert find_loader(directory)[0] == "idefics3"
    text_only = load_pretrained(directory)  # the language model alone
    assert text_only.config.num_layers == 2


def test_vision_tower_matches(tiny_vlm):
    _, hf_model, _, ours = tiny_vlm
    pixel_values = torch.from_numpy(ours.image_processor.process(_image(70, 40)).pixel_values)
    with torch.inference_mode():
        expected = hf_model.model.vision_model(pixel_values=pixel_values).last_hidden_state
        got = ours.model.vision_model(pixel_values)
    assert got.shape == expected.shape == (pixel_values.shape[0], 16, 32)
    assert (got - expected).abs().max() <= ATOL


def test_vision_tower_matches_on_partly_padded_tiles(tiny_vlm):
    """A pixel mask covering part of a tile: positions spread over the grid, padded patches masked as keys."""
    _, hf_model, _, ours = tiny_vlm
    generator = torch.Generator().manual_seed(1)
    pixel_values = torch.randn(2, 3, 32, 32, generator=generator)
    pixel_mask = torch.zeros(2, 32, 32, dtype=torch.long)
    pixel_mask[0, :24, :16] = 1
    pixel_mask[1] = 1
    patch_mask = pixel_mask.unfold(1, 8, 8).unfold(2, 8, 8).sum(dim=(-1, -2)) > 0
    with torch.inference_mode():
        expected = hf_model.model.vision_model(pixel_values=pixel_values, patch_attention_mask=patch_mask)
        got = ours.model.vision_model(pixel_values, pixel_mask)
    valid = patch_mask.view(2, -1)
    assert (got[valid] - expected.last_hidden_state[valid]).abs().max() <= ATOL


def test_connector_matches(tiny_vlm):
    _, hf_model, _, ours = tiny_vlm
    features = torch.randn(3, 16, 32, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = hf_model.model.connector(features)
        got = ours.model.connector(features)
    assert got.shape == expected.shape == (3, 4, 64)
    assert (got - expected).abs().max() <= ATOL


@pytest.mark.parametrize("size", [(20, 20), (70, 40), (40, 100)], ids=["one-tile", "wide", "tall"])
def test_logits_match_for_an_image_and_text_prompt(tiny_vlm, size):
    _, hf_model, processor, ours = tiny_vlm
    image = _image(*size, seed=size[0])
    text = "User: what shape is this?<image> a red circle<end_of_utterance>\nAssistant:"
    inputs = _hf_inputs(processor, text, [image])
    prompt = ours.text_prompt(text, [image], detail="high")
    assert prompt.token_ids == inputs["input_ids"][0].tolist()
    with torch.inference_mode():
        expected = hf_model(**inputs).logits[0]
        embeddings = ours.model.input_embeddings(prompt)
        n = embeddings.shape[0]
        hidden = ours.model(embeddings, torch.arange(n), DenseCausalAttention(1, n))
        got = ours.model.compute_logits(hidden)
    assert (got - expected).abs().max() <= ATOL


def test_smolvlm_logits_match(tiny_vlm, tmp_path):
    directory, _, processor, _ = tiny_vlm
    smol_directory = build_tiny_smolvlm(tmp_path / "smolvlm", directory)
    hf_model = transformers.SmolVLMForConditionalGeneration.from_pretrained(smol_directory, dtype=torch.float32)
    ours = load_vision_language(smol_directory)
    assert find_loader(smol_directory)[0] == "idefics3"
    image = _image(70, 40, seed=9)
    text = "User:<image> what?<end_of_utterance>\nAssistant:"
    inputs = _hf_inputs(processor, text, [image])
    with torch.inference_mode():
        expected = hf_model.eval()(**inputs).logits[0]
        got = _all_logits(ours.model, ours.text_prompt(text, [image], detail="high"))
    assert (got - expected).abs().max() <= ATOL


def test_greedy_ids_match_for_32_tokens(tiny_vlm):
    _, hf_model, processor, ours = tiny_vlm
    images = [_image(70, 40, seed=3), _image(30, 30, seed=4)]
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": "and"},
                {"type": "image"},
                {"type": "text", "text": "?"},
            ],
        }
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = _hf_inputs(processor, text, images)
    with torch.inference_mode():
        expected = hf_model.generate(
            **inputs, max_new_tokens=32, min_new_tokens=32, do_sample=False, eos_token_id=None, pad_token_id=0
        )[0, inputs["input_ids"].shape[1] :].tolist()
    prompt = ours.chat_prompt(messages, images, detail="high")
    assert prompt.token_ids == inputs["input_ids"][0].tolist()
    assert len(prompt.spans) == sum(ours.image_processor.process(i).num_tiles for i in images)
    got = ours.generate_greedy(prompt, max_new_tokens=32, stop_token_ids=())
    assert len(expected) == 32
    assert got == expected


def test_a_different_image_behind_the_same_placeholders_changes_the_output(tiny_vlm):
    *_, ours = tiny_vlm
    first = ours.text_prompt("User:<image>?", [_image(30, 30, seed=5)], detail="low")
    second = ours.text_prompt("User:<image>?", [_image(30, 30, seed=6)], detail="low")
    assert first.token_ids == second.token_ids
    assert first.spans[0].image_hash != second.spans[0].image_hash
    with torch.inference_mode():
        last = [_last_logits(ours.model, prompt) for prompt in (first, second)]
    assert (last[0] - last[1]).abs().max() > 1e-2


def _last_logits(model, prompt):
    return _all_logits(model, prompt)[-1:]


def _all_logits(model, prompt):
    embeddings = model.input_embeddings(prompt)
    n = embeddings.shape[0]
    return model.compute_logits(model(embeddings, torch.arange(n), DenseCausalAttention(1, n)))
