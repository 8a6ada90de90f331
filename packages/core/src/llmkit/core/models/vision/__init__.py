"""Vision-language model families: SmolVLM / Idefics3 (SigLIP tower, pixel-shuffle connector, Llama decoder)."""

from .config import Idefics3Config, VisionConfig
from .idefics3 import Idefics3Connector, Idefics3Model
from .prompt import ImageSpan, MultimodalPrompt
from .siglip import SiglipVisionTower

__all__ = [
    "Idefics3Config",
    "Idefics3Connector",
    "Idefics3Model",
    "ImageSpan",
    "MultimodalPrompt",
    "SiglipVisionTower",
    "VisionConfig",
]
