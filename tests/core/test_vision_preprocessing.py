"""The Idefics3 / SmolVLM image processor (Pillow + numpy) against transformers' on generated images of many
sizes, aspect ratios and modes; image-token expansion; detail levels; bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from llmkit.core.images import Idefics3ImageProcessor, ImageInputError, open_image
from llmkit.core.models.vision.pretrained import load_vision_language

from .vision_fixtures import TILE, build_tiny_idefics3

transformers = pytest.importorskip("transformers")
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil  # noqa: E402


def _noise(height, width, channels, seed):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def _palette(width, height, transparent: bool):
    image = Image.fromarray(_noise(height, width, 3, 7)).quantize(colors=16)
    if transparent:
        image.info["transparency"] = 3
    return image


def _exif_rotated_jpeg(tmp_path):
    image = Image.fromarray(_noise(24, 48, 3, 8))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    path = tmp_path / "rotated.jpg"
    image.save(path, format="JPEG", exif=exif.tobytes())
    return path


IMAGES = {
    "rgb-small-square": lambda _: Image.fromarray(_noise(20, 20, 3, 1)),
    "rgb-one-tile": lambda _: Image.fromarray(_noise(TILE, TILE, 3, 2)),
    "rgb-wide": lambda _: Image.fromarray(_noise(40, 70, 3, 3)),
    "rgb-tall": lambda _: Image.fromarray(_noise(100, 40, 3, 4)),
    "rgb-panorama": lambda _: Image.fromarray(_noise(30, 200, 3, 5)),
    "rgb-odd": lambda _: Image.fromarray(_noise(97, 31, 3, 6)),
    "rgba": lambda _: Image.fromarray(_noise(70, 50, 4, 9), mode="RGBA"),
    "la": lambda _: Image.fromarray(_noise(40, 40, 2, 10), mode="LA"),
    "l": lambda _: Image.fromarray(_noise(45, 45, 1, 11)[:, :, 0], mode="L"),
    "p": lambda _: _palette(60, 40, transparent=False),
    "p-transparent": lambda _: _palette(60, 40, transparent=True),
    "cmyk": lambda _: Image.fromarray(_noise(30, 70, 4, 12), mode="CMYK"),
    "exif-rotated-jpeg": _exif_rotated_jpeg,
}


@pytest.fixture(scope="module")
def reference():
    return Idefics3ImageProcessorPil(
        size={"longest_edge": 4 * TILE}, max_image_size={"longest_edge": TILE}, do_image_splitting=True
    )


@pytest.fixture(scope="module")
def ours():
    return Idefics3ImageProcessor.from_hf_dict(
        {"size": {"longest_edge": 4 * TILE}, "max_image_size": {"longest_edge": TILE}, "resample": 1}
    )


@pytest.mark.parametrize("name", sorted(IMAGES))
@pytest.mark.parametrize("detail", ["high", "low"])
def test_pixel_values_match_transformers(name, detail, reference, ours, tmp_path):
    source = IMAGES[name](tmp_path)
    # transformers decodes a path with load_image (EXIF applied); a PIL image goes in as it is.
    hf_input = str(source) if not isinstance(source, Image.Image) else source
    expected = reference(
        images=[hf_input], do_image_splitting=detail == "high", return_row_col_info=True, return_tensors="np"
    )
    got = ours.process(open_image(source), detail)
    assert got.pixel_values.dtype == np.float32
    assert got.pixel_values.shape == expected["pixel_values"][0].shape
    assert np.abs(got.pixel_values - expected["pixel_values"][0]).max() <= 1e-6
    assert np.array_equal(got.pixel_mask, expected["pixel_attention_mask"][0].astype(bool))
    assert (got.rows, got.cols) == (expected["rows"][0][0], expected["cols"][0][0])


def test_the_tile_count_follows_the_processor_config(ours):
    wide = Image.fromarray(_noise(40, 70, 3, 3))  # longest edge 70 -> 128, 128x74 -> 128x96: 3 rows x 4 cols
    assert (ours.process(wide, "high").rows, ours.process(wide, "high").cols) == (3, 4)
    assert ours.process(wide, "high").num_tiles == 13
    assert ours.process(wide, "low").num_tiles == 1
    assert ours.process(wide, "auto").num_tiles == 13  # bigger than one tile: the full tiling
    small = Image.fromarray(_noise(20, 20, 3, 1))
    assert ours.process(small, "auto").num_tiles == 1  # fits one tile: not blown up into 17
    assert ours.process(small, "high").num_tiles == 17
    with pytest.raises(ValueError, match="detail"):
        ours.process(small, "medium")


def test_exif_orientation_is_applied(tmp_path):
    path = _exif_rotated_jpeg(tmp_path)
    assert Image.open(path).size == (48, 24)
    assert open_image(path).size == (24, 48)
    assert open_image(path.read_bytes()).size == (24, 48)


def test_a_pixel_bomb_is_refused_before_decoding():
    buffer = io.BytesIO()
    Image.new("L", (6000, 6000)).save(buffer, format="PNG")  # 36 MP, a few KB compressed
    with pytest.raises(ImageInputError, match="over the limit of 32000000 pixels"):
        open_image(buffer.getvalue())
    with pytest.raises(ImageInputError, match="over the limit of 1000 pixels"):
        open_image(Image.new("RGB", (40, 40)), max_pixels=1000)


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_bytes_that_are_no_image_get_a_clear_error(data):
    with pytest.raises(ImageInputError, match="image"):
        open_image(data)


def test_a_truncated_image_gets_a_clear_error():
    buffer = io.BytesIO()
    Image.fromarray(_noise(64, 64, 3, 1)).save(buffer, format="PNG")
    with pytest.raises(ImageInputError, match="decode"):
        open_image(buffer.getvalue()[: len(buffer.getvalue()) // 2])


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    directory = build_tiny_idefics3(tmp_path_factory.mktemp("idefics3-prompt"))
    return transformers.AutoProcessor.from_pretrained(directory), load_vision_language(directory)


@pytest.mark.parametrize("name", ["rgb-small-square", "rgb-wide", "rgb-panorama", "rgba", "cmyk"])
def test_prompt_ids_expand_like_the_transformers_processor(name, tiny_vlm, tmp_path):
    processor, ours = tiny_vlm
    image = IMAGES[name](tmp_path)
    text = "User: what shape is this?<image><end_of_utterance>\nAssistant:"
    expected = processor(text=text, images=[image])["input_ids"][0]
    prompt = ours.text_prompt(text, [image], detail="high")
    assert prompt.token_ids == list(expected)
    tiles = ours.image_processor.process(image).num_tiles
    assert (
        prompt.num_image_tokens == tiles * ours.image_seq_len == list(expected).count(ours.model.config.image_token_id)
    )
    assert ours.num_image_tokens(image, "high") == len(prompt.token_ids) - len(
        ours.tokenizer.encode(text.replace("<image>", ""))
    )


def test_chat_template_renders_image_parts_like_transformers(tiny_vlm):
    processor, ours = tiny_vlm
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what shape?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a circle"}]},
        {"role": "user", "content": [{"type": "text", "text": "and this"}, {"type": "image"}]},
    ]
    expected = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert ours.chat_template.render(messages, image_parts=True) == expected
    with pytest.raises(ValueError, match="content part llmkit cannot render"):
        ours.chat_template.render(messages)  # text-only callers (the server today) still refuse image parts


def test_image_count_must_match_the_placeholders(tiny_vlm):
    _, ours = tiny_vlm
    with pytest.raises(ValueError, match="1 <image> places but 2 images"):
        ours.text_prompt("User:<image>", [Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8))])
