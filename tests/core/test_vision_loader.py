"""Loading Idefics3 directories: clear errors for what is missing or inconsistent; prompts that do not fit the
model's placeholders are refused; other dtypes run."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from llmkit.core.errors import InvalidParameterError, ModelFormatError
from llmkit.core.models.vision import ImageSpan, MultimodalPrompt
from llmkit.core.models.vision.pretrained import load_vision_language

from .vision_fixtures import build_tiny_idefics3

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_directory(tmp_path_factory):
    return build_tiny_idefics3(tmp_path_factory.mktemp("idefics3-loader"))


def _copy(directory, tmp_path):
    return shutil.copytree(directory, tmp_path / "copy")


def _edit_json(file, change):
    raw = json.loads(file.read_text())
    change(raw)
    file.write_text(json.dumps(raw))


def test_a_directory_without_image_processor_settings_is_refused(tiny_directory, tmp_path):
    directory = _copy(tiny_directory, tmp_path)
    _edit_json(directory / "processor_config.json", lambda raw: raw.pop("image_processor"))
    with pytest.raises(ModelFormatError, match="preprocessor_config.json"):
        load_vision_language(directory)


def test_an_image_seq_len_the_model_does_not_make_is_refused(tiny_directory, tmp_path):
    directory = _copy(tiny_directory, tmp_path)
    _edit_json(directory / "processor_config.json", lambda raw: raw.update(image_seq_len=9))
    with pytest.raises(ModelFormatError, match="9 image tokens per tile; the model makes 4"):
        load_vision_language(directory)


def test_a_text_model_directory_is_not_a_vision_language_one(tiny_directory, tmp_path):
    directory = _copy(tiny_directory, tmp_path)
    _edit_json(directory / "config.json", lambda raw: raw.update(model_type="llama"))
    with pytest.raises(ModelFormatError, match="not an Idefics3 / SmolVLM directory"):
        load_vision_language(directory)


def test_spans_must_sit_on_image_tokens_and_fill_them(tiny_directory):
    vlm = load_vision_language(tiny_directory)
    prompt = vlm.text_prompt("User:<image>?", [Image.new("RGB", (16, 16), "red")], detail="low")
    span = prompt.spans[0]
    with pytest.raises(InvalidParameterError, match="covers tokens other than the image token"):
        vlm.model.input_embeddings(MultimodalPrompt(prompt.token_ids, [ImageSpan(0, span.embeddings, "x")]))
    with pytest.raises(InvalidParameterError, match="spans fill 0"):
        vlm.model.input_embeddings(MultimodalPrompt(prompt.token_ids, []))
    with pytest.raises(InvalidParameterError, match="overlaps another"):
        MultimodalPrompt(prompt.token_ids, [span, span])


def test_bfloat16_runs_the_tower_and_the_decoder(tiny_directory):
    vlm = load_vision_language(tiny_directory, dtype="bfloat16")
    prompt = vlm.text_prompt("User:<image>?", [Image.new("RGB", (50, 20), "blue")], detail="high")
    assert prompt.spans[0].embeddings.dtype == torch.bfloat16
    assert len(vlm.generate_greedy(prompt, 4, stop_token_ids=())) == 4
