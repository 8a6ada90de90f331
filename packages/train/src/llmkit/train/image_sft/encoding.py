"""Image chat records -> token ids with each image's tokens expanded in place and the assistant loss mask.

The conversation is rendered with `<image>` per image part; assistant spans are found on that text exactly as
for text SFT (`RecordEncoder.assistant_spans`), then every `<image>` expands to the model's tiles and image
tokens (the same text `VisionLanguagePretrained.text_prompt` builds for generation) and the spans shift with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llmkit.core.images import ImageInputError, open_image
from llmkit.core.models.vision.pretrained import IMAGE_PLACEHOLDER, VisionLanguagePretrained

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
        pieces = text.split(IMAGE_PLACEHOLDER)
        if len(pieces) - 1 != len(record.images):
            raise DataError(
                f"{where}: the chat template placed {len(pieces) - 1} images but the record has {len(record.images)}"
            )
        processed = self.process_images(record.images, where)
        expanded, shifts, at = pieces[0], [], len(pieces[0])
        for image, piece in zip(processed, pieces[1:], strict=True):
            image_text = self.pretrained.image_processor.prompt_text(image, self.pretrained.image_seq_len)
            shifts.append((at, len(image_text) - len(IMAGE_PLACEHOLDER)))
            expanded += image_text + piece
            at += len(IMAGE_PLACEHOLDER) + len(piece)
        moved = [(_shift(start, shifts), _shift(end, shifts)) for start, end in spans]
        tokens = self.text._tokens_with_mask(expanded, moved)
        expected = sum(image.num_tiles for image in processed) * self.pretrained.image_seq_len
        found = tokens.ids.count(self.image_token_id)
        if found != expected:
            raise DataError(
                f"{where}: the tokenizer does not keep {IMAGE_PLACEHOLDER} as one token ({found} image tokens, "
                f"expected {expected})"
            )
        return ImageSequence(tokens, record.images, expected)


def _shift(position: int, shifts: list[tuple[int, int]]) -> int:
    """A character position of the rendered text -> its position once the placeholders before it expanded."""
    return position + sum(delta for at, delta in shifts if at < position)


def check_truncated(sequence: ImageSequence, kept: TokenizedSequence, image_token_id: int, where: str) -> Any:
    """A right-truncated sequence must keep every image token (a cut image cannot be fed to the tower)."""
    if kept.ids.count(image_token_id) != sequence.num_image_tokens:
        raise DataError(
            f"{where}: max_length cuts through an image ({len(sequence)} tokens); raise max_length or set "
            "truncation: drop"
        )
    return dataclasses.replace(sequence, tokens=kept)
