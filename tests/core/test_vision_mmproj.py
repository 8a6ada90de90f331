"""A GGUF language model plus its mmproj GGUF, written from a tiny random transformers LLaVA the way llama.cpp's
converters write them, loads into the same model as the HF directory: same image features, logits, greedy ids."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from llmkit.core.errors import ModelFormatError
from llmkit.core.models.vision.pretrained import load_vision_language

from .vision_fixtures import build_tokenizer
from .vision_llava_fixtures import all_logits, build_tiny_llava, write_mmproj, write_text_gguf

transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

MESSAGES = [
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


@pytest.fixture(scope="module")
def llava_files(tmp_path_factory):
    """An HF directory whose projector runs GELU-tanh (what llama.cpp computes for an mlp mmproj) and whose
    processor pads to a square (as llama.cpp does), plus its GGUF language model and two mmproj files."""
    root = tmp_path_factory.mktemp("mmproj")
    directory = build_tiny_llava(root / "hf", projector_act="gelu_pytorch_tanh", do_pad=True, seed=3)
    hf_model = transformers.LlavaForConditionalGeneration.from_pretrained(directory, dtype=torch.float32).eval()
    processor = transformers.AutoProcessor.from_pretrained(directory).image_processor
    text = write_text_gguf(root / "model.gguf", hf_model, build_tokenizer())
    mean, std = processor.image_mean, processor.image_std
    current = write_mmproj(root / "mmproj.gguf", hf_model, mean, std)
    legacy = write_mmproj(root / "mmproj-legacy.gguf", hf_model, mean, std, legacy=True)
    files = {"current": current, "legacy": legacy}
    return SimpleNamespace(
        hf_load=load_vision_language(directory), text=text, mmproj=files, hf_model=hf_model, mean_std=(mean, std)
    )


def _images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)) for shape in ((40, 70, 3), (30, 30, 3))]


@pytest.mark.parametrize("layout", ["current", "legacy"])
def test_gguf_and_mmproj_load_the_same_model_as_the_hf_directory(llava_files, layout):
    hf_load, text, mmproj = llava_files.hf_load, llava_files.text, llava_files.mmproj
    ours = load_vision_language(text, mmproj=mmproj[layout])
    config = ours.model.config
    assert config.feature_layers == (2,) and config.drop_first_token and not config.post_norm_last
    mine, theirs = ours.image_processor, hf_load.image_processor
    assert mine.do_pad and (mine.shortest_edge, mine.crop_size) == (theirs.shortest_edge, theirs.crop_size)
    assert np.array_equal(np.float32(mine.image_mean), np.float32(theirs.image_mean))  # GGUF stores float32
    assert np.array_equal(np.float32(mine.image_std), np.float32(theirs.image_std))
    pixel_values = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        features = ours.model.image_features(pixel_values)
        expected_features = hf_load.model.image_features(pixel_values)
    assert features.shape == (2, 16, 64)
    assert (features - expected_features).abs().max() <= 1e-5
    images = _images()
    prompt = ours.chat_prompt(MESSAGES, images)
    expected_prompt = hf_load.chat_prompt(MESSAGES, images)
    assert prompt.token_ids == expected_prompt.token_ids
    assert [s.image_hash for s in prompt.spans] == [s.image_hash for s in expected_prompt.spans]
    with torch.inference_mode():
        logits, expected_logits = all_logits(ours.model, prompt), all_logits(hf_load.model, expected_prompt)
    assert (logits - expected_logits).abs().max() <= 1e-4
    greedy = ours.generate_greedy(prompt, max_new_tokens=32, stop_token_ids=())
    assert greedy == hf_load.generate_greedy(expected_prompt, max_new_tokens=32, stop_token_ids=())


def test_an_f16_mmproj_computes_with_its_f16_weights(llava_files, tmp_path):
    """llama.cpp's default mmproj stores the matrices and the patch conv as F16: read back, they are the HF
    weights rounded to float16."""
    hf_load, text = llava_files.hf_load, llava_files.text
    source = hf_load.model
    path = write_mmproj(tmp_path / "mmproj-f16.gguf", llava_files.hf_model, *llava_files.mean_std, f16=True)
    ours = load_vision_language(text, mmproj=path)
    rounded = copy.deepcopy(source)
    with torch.no_grad():
        for name, param in rounded.named_parameters():
            if not name.startswith("text_model.") and param.dim() >= 2:
                param.copy_(param.half().float())
    pixel_values = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        got, expected = ours.model.image_features(pixel_values), rounded.image_features(pixel_values)
        unrounded = source.image_features(pixel_values)
    assert (got - expected).abs().max() <= 1e-5
    assert (got - unrounded).abs().max() > 1e-5  # the file really held F16


def test_a_post_norm_in_the_file_is_applied_to_the_last_feature_layer(llava_files, tmp_path):
    """llama.cpp runs `v.post_ln` after the deepest layer it computes when the file has it."""
    hf_load, text, mmproj = llava_files.hf_load, llava_files.text, llava_files.mmproj
    weight = np.random.default_rng(1).standard_normal(32).astype(np.float32)
    bias = np.random.default_rng(2).standard_normal(32).astype(np.float32)
    path = _rewrite(mmproj["current"], tmp_path / "post.gguf", add={"v.post_ln.weight": weight, "v.post_ln.bias": bias})
    ours = load_vision_language(text, mmproj=path)
    assert ours.model.config.post_norm_last
    pixel_values = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        hidden = hf_load.model.vision_tower.hidden_states(pixel_values, (2,))[0]
        normed = torch.nn.functional.layer_norm(hidden, (32,), torch.from_numpy(weight), torch.from_numpy(bias), 1e-5)
        expected = hf_load.model.multi_modal_projector(normed[:, 1:])
        got = ours.model.image_features(pixel_values)
    assert (got - expected).abs().max() <= 1e-5


def test_a_projector_other_than_mlp_is_refused(llava_files, tmp_path):
    text, mmproj = llava_files.text, llava_files.mmproj
    path = _rewrite(mmproj["current"], tmp_path / "ldp.gguf", fields={"clip.projector_type": "ldp"})
    with pytest.raises(ModelFormatError, match="projector type 'ldp'"):
        load_vision_language(text, mmproj=path)


def test_a_language_model_gguf_without_its_mmproj_is_refused(llava_files):
    text = llava_files.text
    with pytest.raises(ModelFormatError, match="pass its vision file too"):
        load_vision_language(text)


def test_an_mmproj_that_is_not_a_clip_file_is_refused(llava_files):
    text = llava_files.text
    with pytest.raises(ModelFormatError, match="architecture 'llama'"):
        load_vision_language(text, mmproj=text)


def _rewrite(source, target, *, fields=None, add=None):
    """A copy of an mmproj GGUF with some string metadata replaced and tensors added."""
    from llmkit.core.models.gguf_file import GGUFFile

    original = GGUFFile(source)
    writer = gguf.GGUFWriter(str(target), "clip")
    for key, value in {**original.fields, **(fields or {})}.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        else:
            writer.add_array(key, value)
    for tensor in original.tensors:
        writer.add_tensor(tensor.name, np.array(tensor.data))
    for name, array in (add or {}).items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target
