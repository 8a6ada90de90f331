"""The Starlette application: routes, auth, body limits, streaming and disconnect handling."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llmkit.core.assistant_output import detect_tool_call_format
from llmkit.core.errors import ChatTemplateError, ContextLengthError, InvalidParameterError

from ..async_engine import AsyncEngine, EngineOverloaded
from ..engine import Engine
from . import responses as R
from .errors import APIError, from_validation_error
from .metrics import ServerMetrics
from .protocol import ChatCompletionRequest, CompletionRequest


class Server:
    """State shared by the routes: the engine, the served name, auth and limits."""

    def __init__(
        self,
        engine: Engine,
        model_name: str,
        api_key: str | None = None,
        max_body_bytes: int = 4 * 2**20,
        max_waiting: int = 256,
    ):
        self.engine = engine
        self.model_name = model_name
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.async_engine = AsyncEngine(engine, max_waiting)
        self.metrics = ServerMetrics(engine)
        template = engine.pretrained.chat_template
        self.tool_call_format = detect_tool_call_format(template.source) if template else "hermes"
        self.created = int(time.time())

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
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body_bytes:
                raise APIError(
                    413, f"request body exceeds the limit of {self.max_body_bytes} bytes", code="body_too_large"
                )
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise APIError(400, f"the request body is not valid JSON: {err}", code="invalid_json") from None
        if not isinstance(data, dict):
            raise APIError(400, "the request body must be a JSON object", code="invalid_json")
        return data

    def check_model(self, name: str) -> None:
        if name != self.model_name:
            raise APIError(
                404,
                f"the model '{name}' does not exist; this server serves '{self.model_name}'",
                param="model",
                code="model_not_found",
            )

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

    async def run(self, request: Request, prompt, params, request_id: str) -> AsyncIterator:
        """Engine outputs for one prompt, with engine errors turned into API errors."""
        try:
            async for output in self.async_engine.generate(prompt, params, request_id):
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


async def _until_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _collect(request: Request, gens: list[AsyncIterator]) -> list[dict[int, R.Choice]]:
    """Run non-streaming generations to the end, cancelling them if the client goes away."""

    async def drain(gen) -> tuple[dict[int, R.Choice], int]:
        choices: dict[int, R.Choice] = {}
        cached = 0
        async for output in gen:
            R.accumulate(choices, output)
            cached = output.num_cached_tokens
        return choices, cached

    work = asyncio.ensure_future(asyncio.gather(*(drain(g) for g in gens)))
    watcher = asyncio.ensure_future(_until_disconnect(request))
    done, _ = await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    if work not in done:
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        raise APIError(499, "client closed the request", code="client_closed")
    watcher.cancel()
    return work.result()


async def chat_completions(request: Request) -> Response:
    server: Server = request.app.state.server
    body = await server.read_json(request)
    try:
        req = ChatCompletionRequest.model_validate(body)
    except ValidationError as err:
        raise from_validation_error(err) from None
    server.check_model(req.model)
    if req.response_format and req.response_format.get("type") != "text":
        raise APIError(
            400,
            "response_format other than 'text' is not supported by this server yet",
            param="response_format",
            code="unsupported_parameter",
        )
    tools = req.tools if req.tools and req.tool_choice != "none" else None
    if tools and req.tool_choice not in (None, "auto"):
        raise APIError(
            400,
            "tool_choice other than 'auto' or 'none' is not supported yet",
            param="tool_choice",
            code="unsupported_parameter",
        )
    messages = [m.model_dump(exclude_none=True) for m in req.messages]
    try:
        prompt = server.engine.pretrained.chat_prompt(messages, tools=tools)
    except ChatTemplateError as err:
        raise APIError(400, str(err), param="messages") from None
    max_tokens = server.max_tokens_for(len(prompt), req.requested_max_tokens)
    top = req.top_logprobs or 0
    params = req.sampling_params(max_tokens, req.logprobs or top > 0, top)
    request_id = R.new_id("chatcmpl")
    if req.stream:
        return _stream(_chat_stream(server, request, req, prompt, params, request_id, tools is not None))
    ((choices, cached),) = await _collect(request, [server.run(request, prompt, params, request_id)])
    return JSONResponse(
        R.chat_response(
            request_id,
            req.model,
            choices,
            len(prompt),
            cached,
            server.engine.tokenizer,
            req.logprobs,
            tools is not None,
            server.tool_call_format,
        )
    )


async def _chat_stream(
    server: Server, request: Request, req: ChatCompletionRequest, prompt, params, request_id: str, with_tools: bool
):
    created = int(time.time())
    tokenizer = server.engine.tokenizer
    yield R.sse(
        R.chat_chunk(
            request_id,
            req.model,
            created,
            [
                {"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
                for i in range(req.n)
            ],
        )
    )
    choices: dict[int, R.Choice] = {}
    cached = 0
    async for output in server.run(request, prompt, params, request_id):
        R.accumulate(choices, output)
        cached = output.num_cached_tokens
        for delta in output.deltas:
            finish = delta.finish_reason
            if with_tools:  # tool calls are parsed from the whole text, so the text is sent when it ends
                if finish is None:
                    continue
                message, finish = R.chat_message(choices[delta.index], True, server.tool_call_format)
                payload = {k: v for k, v in message.items() if k != "role"}
            else:
                payload = {"content": delta.text}
            logprobs = (
                R.chat_logprobs(tokenizer, delta.token_ids, delta.logprobs or [], delta.top_logprobs or [])
                if req.logprobs
                else None
            )
            yield R.sse(
                R.chat_chunk(
                    request_id,
                    req.model,
                    created,
                    [{"index": delta.index, "delta": payload, "logprobs": logprobs, "finish_reason": finish}],
                )
            )
    if req.stream_options and req.stream_options.include_usage:
        completion_tokens = sum(len(c.token_ids) for c in choices.values())
        yield R.sse(R.chat_chunk(request_id, req.model, created, [], R.usage(len(prompt), completion_tokens, cached)))
    yield R.sse("[DONE]")


async def completions(request: Request) -> Response:
    server: Server = request.app.state.server
    body = await server.read_json(request)
    try:
        req = CompletionRequest.model_validate(body)
    except ValidationError as err:
        raise from_validation_error(err) from None
    server.check_model(req.model)
    if req.echo:
        raise APIError(400, "echo is not supported by this server", param="echo", code="unsupported_parameter")
    if req.best_of not in (None, req.n):
        raise APIError(
            400, "best_of must equal n (llmkit returns every sample)", param="best_of", code="unsupported_parameter"
        )
    tokenizer = server.engine.tokenizer
    prompts = [tokenizer.encode(p, add_special_tokens=True) if isinstance(p, str) else p for p in req.prompts()]
    if not prompts or any(not p for p in prompts):
        raise APIError(400, "prompt must not be empty", param="prompt")
    top = req.logprobs or 0
    params = [
        req.sampling_params(server.max_tokens_for(len(p), req.max_tokens), req.logprobs is not None, top)
        for p in prompts
    ]
    request_id = R.new_id("cmpl")
    ids = [f"{request_id}-{i}" for i in range(len(prompts))]
    if req.stream:
        return _stream(_completion_stream(server, request, req, prompts, params, request_id, ids))
    results = await _collect(
        request, [server.run(request, p, sp, rid) for p, sp, rid in zip(prompts, params, ids, strict=True)]
    )
    per_prompt = [(choices, len(p), cached) for (choices, cached), p in zip(results, prompts, strict=True)]
    return JSONResponse(R.completion_response(request_id, req.model, per_prompt, tokenizer, req.logprobs, req.n))


async def _merge(gens: list[AsyncIterator]) -> AsyncIterator[tuple[int, object]]:
    """Interleave several output streams as items arrive; closing the merge closes them all."""
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def pump(index: int, gen: AsyncIterator) -> None:
        try:
            async for item in gen:
                await queue.put((index, item))
        except Exception as err:
            await queue.put((index, err))
        finally:
            await queue.put((index, done))

    tasks = [asyncio.ensure_future(pump(i, g)) for i, g in enumerate(gens)]
    remaining = len(tasks)
    try:
        while remaining:
            index, item = await queue.get()
            if item is done:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()


async def _completion_stream(
    server: Server, request: Request, req: CompletionRequest, prompts, params, request_id: str, ids: list[str]
):
    created = int(time.time())
    tokenizer = server.engine.tokenizer
    completion_tokens, cached_total = 0, 0
    async for p, output in _merge(
        [server.run(request, prompt, sp, rid) for prompt, sp, rid in zip(prompts, params, ids, strict=True)]
    ):
        cached_total += output.num_cached_tokens if output.finished else 0
        for delta in output.deltas:
            completion_tokens += len(delta.token_ids)
            logprobs = (
                R.completion_logprobs(tokenizer, delta.token_ids, delta.logprobs or [], delta.top_logprobs or [], 0)
                if req.logprobs is not None
                else None
            )
            yield R.sse(
                {
                    "id": request_id,
                    "object": "text_completion",
                    "created": created,
                    "model": req.model,
                    "choices": [
                        {
                            "index": p * req.n + delta.index,
                            "text": delta.text,
                            "logprobs": logprobs,
                            "finish_reason": delta.finish_reason,
                        }
                    ],
                }
            )
    if req.stream_options and req.stream_options.include_usage:
        usage = R.usage(sum(len(p) for p in prompts), completion_tokens, cached_total)
        yield R.sse(
            {
                "id": request_id,
                "object": "text_completion",
                "created": created,
                "model": req.model,
                "choices": [],
                "usage": usage,
            }
        )
    yield R.sse("[DONE]")


def _stream(chunks: AsyncIterator[bytes]) -> StreamingResponse:
    async def guarded() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield chunk
        except APIError as err:  # after the headers went out, an error travels as an SSE event
            yield R.sse({"error": {"message": err.message, "type": err.kind, "param": err.param, "code": err.code}})
            yield R.sse("[DONE]")

    return StreamingResponse(guarded(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def list_models(request: Request) -> Response:
    server: Server = request.app.state.server
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {
                    "id": server.model_name,
                    "object": "model",
                    "created": server.created,
                    "owned_by": "llmkit",
                    "max_model_len": server.engine.context_length,
                }
            ],
        }
    )


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    server: Server = request.app.state.server
    return Response(server.metrics.render(), media_type="text/plain; version=0.0.4")


def create_app(server: Server) -> Starlette:
    async def api_error(request: Request, err: APIError) -> Response:
        return err.response()

    def authed(handler):
        async def route(request: Request) -> Response:
            server.check_auth(request)
            return await handler(request)

        return route

    routes = [
        Route("/v1/chat/completions", authed(chat_completions), methods=["POST"]),
        Route("/v1/completions", authed(completions), methods=["POST"]),
        Route("/v1/models", authed(list_models), methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        server.async_engine.shutdown()

    app = Starlette(routes=routes, exception_handlers={APIError: api_error}, lifespan=lifespan)
    app.state.server = server
    return app
