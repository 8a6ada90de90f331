"""Image chat records -> token ids with each image's tokens expanded in place and the assistant loss mask.

The conversation is rendered with `<image>` per image part; assistant spans are found on that text exactly as
for text SFT (`RecordEncoder.assistant_spans`), then every `<image>` expands to the model's tiles and image
tokens (the same text `VisionLanguagePretrained.text_prompt` builds for generation) and the spans shift with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llmkit.core.errors import InvalidParameterError, ModelFormatError
from llmkit.core.images import ImageInputError, open_image
from llmkit.core.models.vision.pretrained import VisionLanguagePretrained

from ..data.encoding import RecordEncoder, TokenizedSequence
from ..errors import DataError
from .records import ImageChatRecord, ImageSource


@dataclasses.dataclass(frozen=True)
class ImageSequence:
    """A tokenized conversation and its images; pixels are made again per batch (`process_images`)."""

    tokens: TokenizedSequence
    images: tuple[ImageSource, ...]
    num_image_tokens: int

    def __len__(self) -> int:
        return len(self.tokens)


class _ImagePartsTemplate:
    """The model's chat template rendering image parts as `<image>` (what `RecordEncoder` calls)."""

    def __init__(self, template):
        self.template, self.name = template, template.name

    def render(self, messages, add_generation_prompt: bool = False) -> str:
        return self.template.render(messages, add_generation_prompt=add_generation_prompt, image_parts=True)


class ImageRecordEncoder:
    def __init__(self, pretrained: VisionLanguagePretrained):
        if pretrained.chat_template is None:
            raise DataError(f"{pretrained.path} has no chat template; set chat_template")
        self.pretrained = pretrained
        self.text = RecordEncoder(pretrained.tokenizer, _ImagePartsTemplate(pretrained.chat_template))
        self.image_token_id = pretrained.model.config.image_token_id

    def process_images(self, images: tuple[ImageSource, ...], where: str = "") -> list:
        pretrained = self.pretrained
        try:
            return [
                pretrained.image_processor.process(open_image(image, max_pixels=pretrained.max_pixels), "auto")
                for image in images
            ]
        except ImageInputError as err:
            raise DataError(f"{where}: {err}") from None

    def encode(self, record: ImageChatRecord, where: str) -> ImageSequence:
        text, spans = self.text.assistant_spans(record.messages)
        try:
            expanded = self.pretrained.expand_image_places(text, [(image, "auto") for image in record.images])
        except (InvalidParameterError, ImageInputError) as err:
            raise DataError(f"{where}: {err}") from None
        moved = [(expanded.moved(start), expanded.moved(end)) for start, end in spans]
        tokens = self.text._tokens_with_mask(expanded.text, moved)
        try:
            self.pretrained.image_tile_starts(tokens.ids, expanded)
        except ModelFormatError as err:
            raise DataError(f"{where}: {err}") from None
        return ImageSequence(tokens, record.images, expanded.num_tiles * self.pretrained.image_seq_len)


def check_truncated(sequence: ImageSequence, kept: TokenizedSequence, image_token_id: int, where: str) -> Any:
    """A right-truncated sequence must keep every image token (a cut image cannot be fed to the tower)."""
    if kept.ids.count(image_token_id) != sequence.num_image_tokens:
        raise DataError(
            f"{where}: max_length cuts through an image ({len(sequence)} tokens); raise max_length or set "
            "truncation: drop"
        )
    return dataclasses.replace(sequence, tokens=kept)
