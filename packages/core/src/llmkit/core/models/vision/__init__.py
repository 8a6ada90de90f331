"""Vision-language model families: SmolVLM / Idefics3 (SigLIP tower, pixel-shuffle connector, Llama decoder) and
LLaVA (CLIP or SigLIP tower, MLP projector, Llama decoder; from an HF directory or GGUF + mmproj GGUF)."""

from .clip import ClipVisionTower
from .config import Idefics3Config, VisionConfig
from .idefics3 import Idefics3Connector, Idefics3Model
from .llava import LlavaModel, LlavaProjector
from .llava_config import LlavaConfig
from .prompt import ImageSpan, MultimodalPrompt
from .siglip import SiglipVisionTower

__all__ = [
    "ClipVisionTower",
    "Idefics3Config",
    "Idefics3Connector",
    "Idefics3Model",
    "ImageSpan",
    "LlavaConfig",
    "LlavaModel",
    "LlavaProjector",
    "MultimodalPrompt",
    "SiglipVisionTower",
    "VisionConfig",
]
