"""Images in the engine: prompts with image tokens, the vision tower run per step, image-keyed prefix blocks."""

from .engine_vision import EngineVision, ImageRows, check_image_prompt
from .loading import load_engine_model
from .prompt import ImagePrompt, PromptImage

__all__ = ["EngineVision", "ImagePrompt", "ImageRows", "PromptImage", "check_image_prompt", "load_engine_model"]
