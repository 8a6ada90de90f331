"""Images as model input: decoding (with limits) and the processors that turn them into tiles of pixels."""

from .clip_processor import ClipImageProcessor
from .idefics3_processor import DETAILS, Idefics3ImageProcessor, ProcessedImage, image_prompt_text
from .loading import DEFAULT_MAX_PIXELS, ImageInputError, open_image, to_rgb

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DETAILS",
    "ClipImageProcessor",
    "Idefics3ImageProcessor",
    "ImageInputError",
    "ProcessedImage",
    "image_prompt_text",
    "open_image",
    "to_rgb",
]
