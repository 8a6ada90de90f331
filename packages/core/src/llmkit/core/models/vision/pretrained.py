"""`load_vision_language`: an Idefics3 / SmolVLM or LLaVA directory (or a GGUF language model plus its mmproj
GGUF) in, a model that takes chat messages with images out."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ...chat_template import ChatTemplate
from ...errors import InvalidParameterError, ModelFormatError
from ...images import DEFAULT_MAX_PIXELS, ClipImageProcessor, Idefics3ImageProcessor, open_image
from ...tokenizer import Tokenizer
from ..attention import KVCache
from ..checkpoint import Checkpoint
from ..gguf_loader import GGUFLoader
from ..pretrained import _choose_template, build_model, parse_dtype, skip_init_on_meta
from .decoder import ImageTokenDecoder
from .idefics3 import Idefics3Model
from .image_places import ExpandedImages, ImageSource, expand_image_places, image_tile_starts
from .llava import LlavaModel
from .llava_config import LlavaConfig
from .llava_loader import LlavaLoader
from .loader import Idefics3Loader
from .mmproj import with_mmproj
from .prompt import ImageSpan, MultimodalPrompt
from .stored_linears import store_vision_linears, vision_format


@dataclasses.dataclass
class VisionLanguagePretrained:
    """A loaded vision-language model, its tokenizer, chat template and image processor."""

    model: Idefics3Model | LlavaModel
    tokenizer: Tokenizer
    chat_template: ChatTemplate | None
    image_processor: Idefics3ImageProcessor | ClipImageProcessor
    path: Path
    max_pixels: int = DEFAULT_MAX_PIXELS

    @property
    def image_seq_len(self) -> int:
        return self.model.config.image_seq_len

    def num_image_tokens(self, image: ImageSource, detail: str = "auto") -> int:
        """Prompt tokens one image costs at `detail` (its tiles' image tokens plus the tags around them)."""
        processed = self.image_processor.process(open_image(image, max_pixels=self.max_pixels), detail)
        return len(self.tokenizer.encode(self.image_processor.prompt_text(processed, self.image_seq_len)))

    def chat_prompt(
        self,
        messages: Sequence[Mapping[str, Any]],
        images: Sequence[ImageSource] = (),
        *,
        detail: str = "auto",
        add_generation_prompt: bool = True,
    ) -> MultimodalPrompt:
        """Messages whose content lists hold `{"type": "image"}` parts, one image per part, in order."""
        if self.chat_template is None:
            raise ModelFormatError(f"{self.path} has no chat template")
        text = self.chat_template.render(messages, add_generation_prompt=add_generation_prompt, image_parts=True)
        return self.text_prompt(text, images, detail=detail)

    def text_prompt(self, text: str, images: Sequence[ImageSource] = (), *, detail: str = "auto") -> MultimodalPrompt:
        """A prompt text with one `<image>` per image: each expands to the model's tiles and image tokens, and the
        vision tower's embeddings fill them."""
        expanded = self.expand_image_places(text, [(image, detail) for image in images])
        token_ids = self.tokenizer.encode(expanded.text)
        starts = self.image_tile_starts(token_ids, expanded)
        tiles = [(index, tile) for index, image in enumerate(expanded.images) for tile in range(image.num_tiles)]
        with torch.inference_mode():
            features = [self.image_features(image) for image in expanded.images]
        spans = [
            ImageSpan(start, features[index][tile], expanded.images[index].image_hash, index)
            for start, (index, tile) in zip(starts, tiles, strict=True)
        ]
        return MultimodalPrompt(token_ids, spans)

    def expand_image_places(self, text: str, images: Sequence[tuple[ImageSource, str]]) -> ExpandedImages:
        """`text` with one `<image>` per (image, detail) expanded to that image's tiles and image tokens."""
        return expand_image_places(text, images, self.image_processor, self.image_seq_len, self.max_pixels)

    def image_tile_starts(self, token_ids: Sequence[int], expanded: ExpandedImages) -> list[int]:
        """Where each tile's run of image tokens starts in the tokenized expanded text (checked)."""
        return image_tile_starts(token_ids, self.model.config.image_token_id, self.image_seq_len, expanded.num_tiles)

    def image_features(self, processed) -> torch.Tensor:
        """[tiles, image_seq_len, hidden] for one processed image (the vision tower runs once per image)."""
        return self.model.image_features(
            torch.from_numpy(processed.pixel_values), torch.from_numpy(processed.pixel_mask)
        )

    @torch.inference_mode()
    def generate_greedy(
        self, prompt: MultimodalPrompt, max_new_tokens: int, stop_token_ids: Sequence[int] | None = None
    ) -> list[int]:
        """Argmax decoding over a contiguous KV cache (the reference path; the engine comes later).
        `stop_token_ids` defaults to the tokenizer's EOS ids; pass () to always run `max_new_tokens`."""
        if max_new_tokens < 1:
            raise InvalidParameterError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        stops = set(self.tokenizer.eos_token_ids if stop_token_ids is None else stop_token_ids)
        model, text = self.model, self.model.config.text
        embeddings = model.input_embeddings(prompt)
        length = embeddings.shape[0]
        cache = KVCache(
            text.num_layers, 1, length + max_new_tokens, text.num_kv_heads, text.head_dim, model.dtype, model.device
        )
        valid = torch.ones(1, length, dtype=torch.bool, device=model.device)
        hidden = model(embeddings, torch.arange(length, device=model.device), cache.step(valid))
        output: list[int] = []
        while True:
            token = int(model.compute_logits(hidden[-1:]).argmax(-1))
            output.append(token)
            if token in stops or len(output) == max_new_tokens:
                return output
            position = torch.tensor([length + len(output) - 1], device=model.device)
            step = cache.step(torch.ones(1, 1, dtype=torch.bool, device=model.device))
            hidden = model(model.text_model.embed_tokens(torch.tensor([token], device=model.device)), position, step)


def load_vision_language(
    path: str | os.PathLike[str],
    *,
    mmproj: str | os.PathLike[str] | None = None,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device = "cpu",
    chat_template: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    weights: str | None = None,
    quantize: str | None = None,
    activations: str | None = None,
    vision_quantize: str | None = None,
) -> VisionLanguagePretrained:
    """Load an Idefics3 / SmolVLM or LLaVA HF directory, or (with `mmproj`) a GGUF language model plus its mmproj
    GGUF, on `device`. Everything loads dense in `dtype`, or (`weights="as-stored"`, `quantize`, `activations`:
    as in `load_pretrained`) kept stored: the language model's matrices and the vision tower's and projector's
    linear layers alike (`store_vision_linears`), computing in float32. The vision side quantizes to `quantize`,
    or to q8_0 where `quantize` is narrower than 8 bits; `vision_quantize` names its format instead."""
    if weights not in (None, "as-stored"):
        raise InvalidParameterError(f"weights={weights!r}: a vision-language model loads as-stored or dense in dtype")
    stored = weights == "as-stored" or quantize is not None
    if vision_quantize is not None and not stored:
        raise InvalidParameterError("vision_quantize needs weights kept as stored (weights='as-stored' or quantize=)")
    path = Path(path).expanduser()
    checkpoint = _checkpoint(path, None if mmproj is None else Path(mmproj).expanduser(), stored)
    torch_dtype = parse_dtype(dtype)
    config = checkpoint.metadata["vision_language"]
    text_model = build_model(
        checkpoint, torch_dtype, device, as_stored=stored, quantize=quantize, activations=activations or "float32"
    )
    with torch.device("meta"), skip_init_on_meta():
        if isinstance(config, LlavaConfig):
            has_post_norm = "vision_tower.post_layernorm.weight" in checkpoint.metadata["vision_tensors"]
            model: ImageTokenDecoder = LlavaModel(config, text_model=torch.nn.Module(), post_layernorm=has_post_norm)
        else:
            model = Idefics3Model(config, text_model=torch.nn.Module())
    vision = checkpoint.metadata["vision_tensors"]
    if stored:  # the tower's and projector's linears as the language model's: float32 in and out
        torch_dtype = torch.float32
        vision = store_vision_linears(
            model,
            vision,
            quantize_to=vision_format(quantize, vision_quantize),
            activations=activations or "float32",
            device=device,
        )
    vision = {name: tensor.to(device=device, dtype=torch_dtype) for name, tensor in vision.items()}
    unexpected = model.load_state_dict(vision, strict=False, assign=True).unexpected_keys
    if unexpected:
        raise ModelFormatError(f"{checkpoint.path} holds a tensor {unexpected[0]!r} this model has no place for")
    model.text_model = text_model
    missing = [name for name, p in model.named_parameters() if p.is_meta]
    if missing:
        raise ModelFormatError(f"{checkpoint.path} lacks the tensor {missing[0]!r}")
    processor = _image_processor(config, checkpoint)
    template = _choose_template(chat_template, checkpoint.chat_template, checkpoint.tokenizer)
    return VisionLanguagePretrained(model.eval(), checkpoint.tokenizer, template, processor, path, max_pixels)


def _checkpoint(path: Path, mmproj: Path | None, keep_stored: bool) -> Checkpoint:
    if mmproj is not None:
        gguf = GGUFLoader()
        if not gguf.can_load(path):
            raise ModelFormatError(f"with an mmproj file, {path} must be the GGUF language model")
        if not mmproj.is_file():
            raise ModelFormatError(f"mmproj file {mmproj} does not exist")
        return with_mmproj(gguf.load(path, keep_stored=keep_stored), mmproj, keep_stored=keep_stored)
    for loader in (Idefics3Loader(), LlavaLoader()):
        if loader.can_load(path):
            return loader.load(path, keep_stored=keep_stored)
    if GGUFLoader().can_load(path):
        raise ModelFormatError(f"{path} is a GGUF language model; pass its vision file too (mmproj=...)")
    raise ModelFormatError(
        f"{path} is not an Idefics3 / SmolVLM directory, nor a LLaVA one (config.json model_type), nor a GGUF "
        "language model with an mmproj file"
    )


def _image_processor(config, checkpoint: Checkpoint) -> Idefics3ImageProcessor | ClipImageProcessor:
    settings = checkpoint.metadata["image_processor"]
    if isinstance(config, LlavaConfig):
        processor = ClipImageProcessor.from_hf_dict(settings)
        size = config.vision.image_size
        if processor.output_size != (size, size):
            raise ModelFormatError(
                f"the image processor makes {processor.output_size} images; the vision tower takes {size}x{size}"
            )
        return processor
    seq_len = checkpoint.metadata["processor"].get("image_seq_len", config.image_seq_len)
    if seq_len != config.image_seq_len:
        raise ModelFormatError(
            f"processor_config.json says {seq_len} image tokens per tile; the model makes {config.image_seq_len}"
        )
    return Idefics3ImageProcessor.from_hf_dict(settings)
