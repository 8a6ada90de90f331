"""`Server`: what the routes share — the engine, the served names, the embedding model, auth, body limits, admission."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request

from llmkit.core.assistant_output import detect_tool_call_format
from llmkit.core.errors import ContextLengthError, InvalidParameterError

from ..async_engine import AsyncEngine, EngineOverloaded, RequestFailed
from ..engine import Engine
from .errors import APIError
from .image_options import ImageLimits
from .metrics import ServerMetrics

if TYPE_CHECKING:
    from .embeddings import EmbeddingModel
    from .guards import ServerGuards

logger = logging.getLogger(__name__)

# Admission hook: how a prepared prompt enters the engine for one HTTP request (None: add it).
Admission = Callable[[Request, list[int], object, str], Awaitable[None]] | None


class Server:
    """State shared by the routes: the engine, the served names, auth and limits.

    `model_name` is the name clients send as `model`, or several (the first is the main one; all are listed by
    /v1/models). `embeddings`, when given, serves /v1/embeddings under its own name."""

    def __init__(
        self,
        engine: Engine,
        model_name: str | Sequence[str],
        api_key: str | None = None,
        max_body_bytes: int = 4 * 2**20,
        max_waiting: int = 256,
        body_timeout: float = 30.0,
        embeddings: EmbeddingModel | None = None,
    ):
        names = (model_name,) if isinstance(model_name, str) else tuple(model_name)
        if not names or not all(names) or len(set(names)) != len(names):
            raise ValueError(f"served model names must be distinct and non-empty, got {list(names)}")
        if embeddings is not None and embeddings.name in names:
            raise ValueError(f"the embedding model's name {embeddings.name!r} is also a served model name")
        self.engine = engine
        self.served_model_names = names
        self.model_name = names[0]
        self.embeddings = embeddings
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout  # seconds for a whole request body to arrive (slow clients)
        self.async_engine = AsyncEngine(engine, max_waiting)
        self.metrics = ServerMetrics(engine)
        template = engine.pretrained.chat_template
        self.tool_call_format = detect_tool_call_format(template.source) if template else "hermes"
        self.created = int(time.time())
        self.admission: Admission = None  # a decode worker imports prompts' K/V instead of computing them
        self.guards: ServerGuards | None = None  # input/output guards run per request (server/guards.py)
        self.image_limits = ImageLimits()  # images per chat request, bytes, pixels, remote hosts (image_parts.py)
        self.prewarmed: Future | None = None  # the structured-output warm-up the app starts (GrammarManager.prewarm)

    def check_auth(self, request: Request) -> None:
        if self.api_key is None:
            return
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), self.api_key.encode()):
            raise APIError(
                401,
                "invalid or missing API key (send 'Authorization: Bearer <key>')",
                "authentication_error",
                code="invalid_api_key",
            )

    async def read_json(self, request: Request) -> dict:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise APIError(
                413,
                f"request body of {declared} bytes exceeds the limit of {self.max_body_bytes}",
                code="body_too_large",
            )
        body = bytearray()
        try:
            async with asyncio.timeout(self.body_timeout):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > self.max_body_bytes:
                        raise APIError(
                            413, f"request body exceeds the limit of {self.max_body_bytes} bytes", code="body_too_large"
                        )
        except TimeoutError:
            raise APIError(
                408, f"the request body did not arrive within {self.body_timeout:g} s", code="body_timeout"
            ) from None
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise APIError(400, f"the request body is not valid JSON: {err}", code="invalid_json") from None
        if not isinstance(data, dict):
            raise APIError(400, "the request body must be a JSON object", code="invalid_json")
        return data

    def check_model(self, name: str) -> None:
        """Refuse a generation request whose `model` is not one of the served names."""
        if name in self.served_model_names:
            return
        if self.embeddings is not None and name == self.embeddings.name:
            raise APIError(
                400,
                f"{name!r} is an embedding model; send it to /v1/embeddings, or use {self._names()} here",
                param="model",
                code="model_not_supported",
            )
        raise APIError(
            404,
            f"the model {_shorten(name)!r} does not exist; this server serves {self._names()}",
            param="model",
            code="model_not_found",
        )

    def embedding_model_for(self, name: str) -> EmbeddingModel:
        """The embedding model an embeddings request names, else its OpenAI-shaped error."""
        if self.embeddings is not None and name == self.embeddings.name:
            return self.embeddings
        if name in self.served_model_names:
            raise APIError(
                400,
                f"{name!r} is a generation model and does not make embeddings"
                + (f"; use {self.embeddings.name!r}" if self.embeddings else " (this server has no embedding model)"),
                param="model",
                code="model_not_supported",
            )
        served = f"'{self.embeddings.name}'" if self.embeddings else "none (start it with --embedding-model)"
        raise APIError(
            404,
            f"the model {_shorten(name)!r} does not exist; this server's embedding model is {served}",
            param="model",
            code="model_not_found",
        )

    def _names(self) -> str:
        return ", ".join(f"'{n}'" for n in self.served_model_names)

    def max_tokens_for(self, prompt_tokens: int, requested: int | None) -> int:
        context = self.engine.context_length
        if prompt_tokens >= context:
            raise APIError(
                400,
                f"this model's maximum context length is {context} tokens; the prompt has {prompt_tokens}",
                param="messages",
                code="context_length_exceeded",
            )
        if requested is None:
            return context - prompt_tokens
        if prompt_tokens + requested > context:
            raise APIError(
                400,
                f"this model's maximum context length is {context} tokens; you requested {prompt_tokens + requested} "
                f"({prompt_tokens} in the prompt, {requested} for the completion)",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return requested

    async def run(self, request: Request, prompt, params, request_id: str, admit=None) -> AsyncIterator:
        """Engine outputs for one prompt, with engine errors turned into API errors. `admit` (an async
        callable) replaces how the prompt enters the engine; by default the server's admission hook."""
        if admit is None and self.admission is not None:

            async def admit() -> None:
                await self.admission(request, prompt, params, request_id)

        try:
            async for output in self.async_engine.generate(prompt, params, request_id, admit):
                if output.finished:
                    self.metrics.observe(output.timing)
                yield output
        except EngineOverloaded as err:
            raise APIError(
                503,
                f"the server is overloaded ({err}); retry shortly",
                "server_error",
                code="overloaded",
                headers={"Retry-After": "1"},
            ) from None
        except (InvalidParameterError, ContextLengthError) as err:
            raise APIError(400, str(err)) from None
        except RequestFailed as err:
            raise engine_error(request_id, str(err).split(":", 1)[0]) from None
        except APIError:
            raise
        except Exception as err:  # whatever else went wrong: an OpenAI-shaped 500, never a bare one
            logger.exception("request %s failed", request_id)
            raise engine_error(request_id, type(err).__name__) from None


def engine_error(request_id: str, kind: str) -> APIError:
    """The 500 for a request the engine could not finish (the details go to the server's log)."""
    return APIError(
        500,
        f"the engine failed while generating request {request_id} ({kind}); other requests are not affected",
        "server_error",
        code="engine_error",
    )


def _shorten(text: str, limit: int = 100) -> str:
    """A client's string quoted back in an error, cut to `limit` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
