"""The CLIP / LLaVA image processor (Pillow + numpy) against transformers' CLIP and LLaVA image processors (PIL
backends) on generated images of many sizes, aspect ratios and modes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from llmkit.core.errors import InvalidParameterError
from llmkit.core.images import ClipImageProcessor, open_image

transformers = pytest.importorskip("transformers")
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil  # noqa: E402
from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil  # noqa: E402


def _noise(height, width, channels, seed):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def _palette(transparent: bool):
    image = Image.fromarray(_noise(40, 60, 3, 7)).quantize(colors=16)
    if transparent:
        image.info["transparency"] = 3
    return image


def _exif_rotated_jpeg(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = tmp_path / "rotated.jpg"
    Image.fromarray(_noise(24, 48, 3, 8)).save(path, format="JPEG", exif=exif.tobytes())
    return path


IMAGES = {
    "rgb-small-square": lambda _: Image.fromarray(_noise(20, 20, 3, 1)),
    "rgb-exact": lambda _: Image.fromarray(_noise(32, 32, 3, 2)),
    "rgb-wide": lambda _: Image.fromarray(_noise(40, 70, 3, 3)),
    "rgb-tall": lambda _: Image.fromarray(_noise(100, 40, 3, 4)),
    "rgb-panorama": lambda _: Image.fromarray(_noise(30, 200, 3, 5)),
    "rgb-odd": lambda _: Image.fromarray(_noise(97, 31, 3, 6)),
    "rgba": lambda _: Image.fromarray(_noise(70, 50, 4, 9), mode="RGBA"),
    "la": lambda _: Image.fromarray(_noise(40, 40, 2, 10), mode="LA"),
    "l": lambda _: Image.fromarray(_noise(45, 45, 1, 11)[:, :, 0], mode="L"),
    "p": lambda _: _palette(transparent=False),
    "p-transparent": lambda _: _palette(transparent=True),
    "cmyk": lambda _: Image.fromarray(_noise(30, 70, 4, 12), mode="CMYK"),
    "exif-rotated-jpeg": _exif_rotated_jpeg,
}
SETTINGS = {
    # CLIP: shortest edge 36 then a 32x32 center crop (what llava-hf's preprocessor_config.json holds, scaled down)
    "clip": (CLIPImageProcessorPil, {"size": {"shortest_edge": 36}, "crop_size": {"height": 32, "width": 32}}),
    # LLaVA-1.5 as trained (and as llama.cpp runs an mlp mmproj): pad to a square of the mean colour first
    "llava-pad": (
        LlavaImageProcessorPil,
        {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}, "do_pad": True},
    ),
    # SigLIP-style: straight to height x width, no crop, mean/std 0.5
    "square-resize": (
        LlavaImageProcessorPil,
        {
            "size": {"height": 32, "width": 32},
            "do_center_crop": False,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
        },
    ),
}


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_pixel_values_match_transformers(name, setting, tmp_path):
    reference_class, settings = SETTINGS[setting]
    reference = reference_class(**settings)
    ours = ClipImageProcessor.from_hf_dict(reference.to_dict())
    source = IMAGES[name](tmp_path)
    # transformers decodes a path with load_image (EXIF applied); a PIL image goes in as it is.
    hf_input = source if isinstance(source, Image.Image) else str(source)
    expected = reference(images=[hf_input], return_tensors="np")["pixel_values"]
    got = ours.process(open_image(source))
    assert got.pixel_values.shape == expected.shape == (1, 3, 32, 32)
    assert np.abs(got.pixel_values - expected).max() <= 1e-6
    assert got.num_tiles == 1 and got.pixel_mask.all()


def test_the_same_pixels_give_the_same_hash_and_other_pixels_another():
    processor = ClipImageProcessor.from_hf_dict({"size": {"shortest_edge": 32}, "crop_size": 32})
    first = processor.process(Image.fromarray(_noise(40, 50, 3, 1)))
    assert processor.process(Image.fromarray(_noise(40, 50, 3, 1))).image_hash == first.image_hash
    assert processor.process(Image.fromarray(_noise(40, 50, 3, 2))).image_hash != first.image_hash


def test_bad_settings_are_refused():
    with pytest.raises(InvalidParameterError, match="neither shortest_edge nor height and width"):
        ClipImageProcessor.from_hf_dict({"size": {"longest_edge": 32}})
    with pytest.raises(InvalidParameterError, match="no fixed output size"):
        _ = ClipImageProcessor.from_hf_dict({"size": {"shortest_edge": 32}, "do_center_crop": False}).output_size
