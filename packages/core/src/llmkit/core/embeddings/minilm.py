"""A BERT encoder in plain torch for sentence embeddings (all-MiniLM-L6-v2: 6 layers, 384 wide, mean pooling).

Written here instead of depending on transformers/sentence-transformers: the model is small and
fixed, and llmkit stays installable with torch, tokenizers and safetensors alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from torch import nn
from torch.nn import functional as F

from .download import pull_embedding_model


class BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.attention_output = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, hidden // self.heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)), mask)
        attended = attended.transpose(1, 2).reshape(batch, length, hidden)
        x = self.attention_norm(x + self.attention_output(attended))
        return self.output_norm(x + self.output(F.gelu(self.intermediate(x))))


class BertEncoder(nn.Module):
    """BERT's encoder stack (post-norm, absolute positions, exact GELU) returning the last hidden states."""

    def __init__(self, config: dict):
        super().__init__()
        hidden, eps = config["hidden_size"], config["layer_norm_eps"]
        self.word_embeddings = nn.Embedding(config["vocab_size"], hidden)
        self.position_embeddings = nn.Embedding(config["max_position_embeddings"], hidden)
        self.token_type_embeddings = nn.Embedding(config["type_vocab_size"], hidden)
        self.embedding_norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(
            BertLayer(hidden, config["num_attention_heads"], config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"])
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        x = self.embedding_norm(x)
        mask = attention_mask[:, None, None, :].bool()
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def load_hf_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Load HF BertModel weight names (with or without the `bert.` prefix)."""
        renames = {
            "embeddings.word_embeddings": "word_embeddings",
            "embeddings.position_embeddings": "position_embeddings",
            "embeddings.token_type_embeddings": "token_type_embeddings",
            "embeddings.LayerNorm": "embedding_norm",
            "attention.self.query": "query",
            "attention.self.key": "key",
            "attention.self.value": "value",
            "attention.output.dense": "attention_output",
            "attention.output.LayerNorm": "attention_norm",
            "intermediate.dense": "intermediate",
            "output.dense": "output",
            "output.LayerNorm": "output_norm",
            "encoder.layer": "layers",
        }
        state = {}
        for name, tensor in tensors.items():
            name = name.removeprefix("bert.")
            if name.startswith("pooler.") or name.endswith("position_ids"):
                continue
            for old, new in renames.items():
                name = name.replace(old, new)
            state[name] = tensor
        self.load_state_dict(state)


class MiniLMEmbedder:
    """Sentence embeddings: BERT encoder, mean pooling over real tokens, L2-normalized (float32 numpy)."""

    name = "all-minilm-l6-v2"

    def __init__(self, path: str | Path | None = None, *, max_length: int = 256, batch_size: int = 32):
        directory = Path(path) if path is not None else pull_embedding_model(quiet=True)
        config = json.loads((directory / "config.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.encoder = BertEncoder(config)
        self.encoder.load_hf_state_dict(load_file(str(directory / "model.safetensors")))
        self.encoder.eval()
        self.batch_size = batch_size
        self.dimension = config["hidden_size"]
        self.max_length = max_length  # texts are truncated to this many tokens ([CLS] and [SEP] included)
        self.vocab_size = config["vocab_size"]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), 384] unit vectors."""
        return self.embed_token_ids([self.tokenizer.encode(text).ids for text in texts])

    @torch.inference_mode()
    def embed_token_ids(self, encodings: Sequence[Sequence[int]]) -> np.ndarray:
        """Unit vectors for token-id sequences taken as the encoder's whole input (as `tokenizer.encode(text).ids`
        gives them: [CLS] ... [SEP]); batches sorted by length to limit padding."""
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]))
        out = np.zeros((len(encodings), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            length = max(len(encodings[i]) for i in batch)
            ids = torch.zeros(len(batch), length, dtype=torch.long)
            mask = torch.zeros(len(batch), length, dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(encodings[i])] = torch.tensor(encodings[i], dtype=torch.long)
                mask[row, : len(encodings[i])] = 1
            hidden = self.encoder(ids, mask)
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            out[batch] = F.normalize(pooled, dim=-1).numpy()
        return out
