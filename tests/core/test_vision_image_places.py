"""`expand_image_places` and `image_tile_starts`: the one expansion of `<image>` places that core's generation,
the engine and image SFT share (text, per-place character shifts, the count and token-run checks)."""

from __future__ import annotations

import pytest
from PIL import Image

from llmkit.core.errors import InvalidParameterError, ModelFormatError
from llmkit.core.images import Idefics3ImageProcessor
from llmkit.core.models.vision.image_places import IMAGE_PLACEHOLDER, expand_image_places, image_tile_starts

TILE = 32
PROCESSOR = Idefics3ImageProcessor.from_hf_dict(
    {"max_image_size": {"longest_edge": TILE}, "size": {"longest_edge": 4 * TILE}, "resample": 1}
)


def _expand(text, images):
    return expand_image_places(text, images, PROCESSOR, 4, 10**7)


def test_each_place_becomes_its_images_text_and_positions_move_with_it():
    text = "User: first<image> then ab<image>\nAssistant: ok"
    images = [(Image.new("RGB", (80, 40), "red"), "high"), (Image.new("RGB", (8, 8), "blue"), "low")]
    expanded = _expand(text, images)
    image_texts = [PROCESSOR.prompt_text(image, 4) for image in expanded.images]
    pieces = text.split(IMAGE_PLACEHOLDER)
    assert expanded.text == pieces[0] + image_texts[0] + pieces[1] + image_texts[1] + pieces[2]
    assert [image.num_tiles for image in expanded.images] == [9, 1]  # 4x2 tiles plus the global image
    assert expanded.num_tiles == 10
    places = [i for i in range(len(text)) if text.startswith(IMAGE_PLACEHOLDER, i)]
    for position, char in enumerate(text):
        if any(at <= position < at + len(IMAGE_PLACEHOLDER) for at in places):
            continue
        assert expanded.text[expanded.moved(position)] == char
    assert expanded.moved(len(text)) == len(expanded.text)
    assert expanded.moved(places[0]) == places[0]  # a span starting at the place keeps the image inside it


def test_the_place_count_is_checked_before_any_image_is_decoded():
    with pytest.raises(InvalidParameterError, match="1 <image> places but 2 images"):
        _expand("User:<image>", [(b"not an image", "auto"), (b"nor this", "auto")])


def test_tile_starts_need_one_run_of_image_seq_len_per_tile():
    image = 7
    ids = [1, 7, 7, 7, 2, 3, 7, 7, 7, 4]
    assert image_tile_starts(ids, image, 3, 2) == [1, 6]
    with pytest.raises(ModelFormatError, match=r"expected 3 runs of 3 image tokens, found \[3, 3\]"):
        image_tile_starts(ids, image, 3, 3)
    with pytest.raises(ModelFormatError, match=r"found \[3, 2\]"):
        image_tile_starts([7, 7, 7, 0, 7, 7], image, 3, 2)
    with pytest.raises(ModelFormatError, match=r"found \[6\]"):
        image_tile_starts([7] * 6, image, 3, 2)
