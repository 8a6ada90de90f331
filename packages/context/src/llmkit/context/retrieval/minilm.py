"""all-MiniLM-L6-v2 in plain torch; the encoder lives in llmkit-core, shared with llmkit-train's dedup."""

from llmkit.core.embeddings.minilm import BertEncoder, BertLayer, MiniLMEmbedder

__all__ = ["BertEncoder", "BertLayer", "MiniLMEmbedder"]
