"""`POST /v1/embeddings`: OpenAI-shaped sentence embeddings from core's MiniLM encoder.

The embedding model is loaded on the first embeddings request (a server that never embeds never
downloads or holds it) and runs on its own worker thread, so the event loop and the generation
engine's thread keep going while it encodes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llmkit.core.embeddings.download import DEFAULT_EMBEDDING_MODEL

from .errors import APIError, from_validation_error

logger = logging.getLogger(__name__)

MAX_INPUTS = 2048  # inputs in one request, as OpenAI allows
MAX_LENGTH = 256  # tokens per input ([CLS] and [SEP] included): all-MiniLM-L6-v2's trained sequence length


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Any  # a string, strings, token ids or token-id lists: `parse_inputs` says what is wrong
    model: str
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


class EmbeddingModel:
    """The server's embedding model: `all-minilm-l6-v2` (core's default, fetched on first use) or a directory
    with a sentence-transformers BERT checkpoint (config.json, tokenizer.json, model.safetensors)."""

    def __init__(self, source: str = DEFAULT_EMBEDDING_MODEL):
        self.source = source
        if source == DEFAULT_EMBEDDING_MODEL:
            self.name, self.max_length = source, MAX_LENGTH
        else:
            directory = Path(source)
            if not (directory / "config.json").is_file():
                raise ValueError(
                    f"--embedding-model {source!r} is neither {DEFAULT_EMBEDDING_MODEL!r} nor a directory with "
                    "config.json, tokenizer.json and model.safetensors"
                )
            config = json.loads((directory / "config.json").read_text())
            self.name = directory.resolve().name
            self.max_length = min(MAX_LENGTH, int(config.get("max_position_embeddings", MAX_LENGTH)))
        self._embedder = None
        self._counting_tokenizer = None  # the encoder's tokenizer without truncation: over-long inputs are refused
        self._load_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmkit-embeddings")

    def embedder(self):
        """The loaded encoder (loads it on first use; a failed load is retried by the next request)."""
        with self._load_lock:
            if self._embedder is None:
                from tokenizers import Tokenizer

                from llmkit.core.embeddings.minilm import MiniLMEmbedder

                path = None if self.source == DEFAULT_EMBEDDING_MODEL else self.source
                embedder = MiniLMEmbedder(path, max_length=self.max_length)
                self._counting_tokenizer = Tokenizer.from_str(embedder.tokenizer.to_str())
                self._counting_tokenizer.no_truncation()
                self._embedder = embedder
            return self._embedder

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """The ids the encoder sees for each text ([CLS] ... [SEP]), never truncated."""
        return [encoding.ids for encoding in self._counting_tokenizer.encode_batch(texts)]

    async def run(self, function, *args):
        """`function(*args)` on the embedding thread, awaited without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def parse_inputs(value: Any) -> list[str] | list[list[int]]:
    """OpenAI's four input shapes as a list of texts or a list of token-id lists; empty or mixed input is refused."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise APIError(400, _SHAPES, param="input", code="invalid_value")
    if not value:
        raise APIError(400, "'input' must not be empty", param="input", code="invalid_value")
    if len(value) > MAX_INPUTS:
        raise APIError(
            400,
            f"'input' has {len(value)} items; at most {MAX_INPUTS} inputs per request",
            param="input",
            code="too_many_inputs",
        )
    if all(isinstance(item, str) for item in value):
        for index, text in enumerate(value):
            if not text:
                raise APIError(400, f"input[{index}] is an empty string", param="input", code="invalid_value")
        return value
    if all(_is_token_id(item) for item in value):
        return [value]
    if all(isinstance(item, list) for item in value):
        for index, ids in enumerate(value):
            if not ids:
                raise APIError(400, f"input[{index}] is an empty token list", param="input", code="invalid_value")
            if not all(_is_token_id(t) for t in ids):
                raise APIError(
                    400, f"input[{index}] must hold only integer token ids", param="input", code="invalid_value"
                )
        return value
    raise APIError(400, _SHAPES, param="input", code="invalid_value")


_SHAPES = "'input' must be a string, an array of strings, an array of token ids or an array of token-id arrays"


def _is_token_id(item: Any) -> bool:
    return isinstance(item, int) and not isinstance(item, bool)


def encode_inputs(model: EmbeddingModel, inputs: list[str] | list[list[int]]) -> list[list[int]]:
    """Each input as the token ids the encoder sees; refuses (never truncates) inputs over the model's length."""
    embedder, max_length = model.embedder(), model.max_length
    if isinstance(inputs[0], str):
        encodings = model.token_ids(inputs)
    else:
        encodings = inputs
        for index, ids in enumerate(encodings):
            for position, token in enumerate(ids):
                if not 0 <= token < embedder.vocab_size:
                    raise APIError(
                        400,
                        f"input[{index}]: token id {token} at position {position} is outside the embedding "
                        f"model's vocabulary [0, {embedder.vocab_size})",
                        param="input",
                        code="invalid_value",
                    )
    for index, ids in enumerate(encodings):
        if len(ids) > max_length:
            raise APIError(
                400,
                f"this model's maximum input length is {max_length} tokens; input[{index}] has {len(ids)} "
                "(split it or shorten it)",
                param="input",
                code="context_length_exceeded",
            )
    return encodings


def _embed(
    model: EmbeddingModel, inputs: list[str] | list[list[int]], dimensions: int | None
) -> tuple[np.ndarray, int]:
    """On the embedding thread: load (first time), check `dimensions`, tokenize, check lengths, encode."""
    try:
        embedder = model.embedder()
    except Exception as err:
        logger.exception("loading the embedding model %s failed", model.source)
        raise APIError(
            503,
            f"the embedding model {model.name!r} could not be loaded ({type(err).__name__}: {err}); retry later",
            "server_error",
            code="model_unavailable",
        ) from None
    if dimensions is not None and dimensions != embedder.dimension:
        raise APIError(
            400,
            f"the model {model.name!r} does not support 'dimensions' other than its own {embedder.dimension} "
            "(it is not trained for shortened embeddings)",
            param="dimensions",
            code="unsupported_parameter",
        )
    encodings = encode_inputs(model, inputs)
    try:
        vectors = embedder.embed_token_ids(encodings)
    except Exception as err:
        logger.exception("an embeddings request failed")
        raise APIError(
            500,
            f"the embedding model failed on this request ({type(err).__name__}); other requests are not affected",
            "server_error",
            code="embedding_error",
        ) from None
    return vectors, sum(len(ids) for ids in encodings)


def _encode_vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":  # little-endian float32 bytes, what the openai client decodes
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()


async def create_embeddings(request: Request) -> Response:
    server = request.app.state.server
    body = await server.read_json(request)
    try:
        req = EmbeddingRequest.model_validate(body)
    except ValidationError as err:
        raise from_validation_error(err) from None
    model: EmbeddingModel = server.embedding_model_for(req.model)  # 404/400 for any other name
    inputs = parse_inputs(req.input)
    vectors, tokens = await model.run(_embed, model, inputs, req.dimensions)
    data = [
        {"object": "embedding", "index": i, "embedding": _encode_vector(vector, req.encoding_format)}
        for i, vector in enumerate(vectors)
    ]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": req.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
