"""Models on disk: the catalog and store (`llmkit pull`), checkpoint loaders and the Llama model."""
