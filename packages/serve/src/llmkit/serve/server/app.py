"""The Starlette application: routes, streaming and disconnect handling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..reasoning import ReasoningStream, ReplyReasoning
from ..structured.generic_tools import GENERIC, new_tool_call_stream, set_generic_messages
from . import responses as R
from .document_parts import merge_page_images, take_document_parts
from .embeddings import create_embeddings
from .errors import APIError
from .guards import guard_choices, guard_messages, guard_prompts, guarded_outputs
from .image_parts import load_images, take_image_parts
from .preparation import prepare_chat, prepare_completion
from .protocol import ChatCompletionRequest, CompletionRequest
from .request_id import HEADER as REQUEST_ID_HEADER
from .request_id import RequestIdMiddleware, request_id_of
from .scaling import scaled_chat, scaled_completion
from .state import Server
from .structured_admission import compile_for_request, structured_admit

logger = logging.getLogger(__name__)


async def _until_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _collect(request: Request, gens: list[AsyncIterator]) -> list[dict[int, R.Choice]]:
    """Run non-streaming generations to the end. If the client goes away, or one of them fails
    (a later prompt refused with 503, an engine error), the others are cancelled: aborted, blocks freed."""

    async def drain(gen) -> tuple[dict[int, R.Choice], int]:
        choices: dict[int, R.Choice] = {}
        cached = 0
        async for output in gen:
            R.accumulate(choices, output)
            cached = output.num_cached_tokens
        return choices, cached

    tasks = [asyncio.ensure_future(drain(g)) for g in gens]
    watcher = asyncio.ensure_future(_until_disconnect(request))
    try:
        pending: set[asyncio.Future] = {*tasks, watcher}
        while not all(t.done() for t in tasks):
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if watcher in done:
                raise APIError(499, "client closed the request", code="client_closed")
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
        return [t.result() for t in tasks]
    finally:
        for task in (*tasks, watcher):
            task.cancel()
        await asyncio.gather(*tasks, watcher, return_exceptions=True)


async def chat_completions(request: Request) -> Response:
    server: Server = request.app.state.server
    body = await server.read_json(request)
    pages = await take_document_parts(server, body)  # file parts: PDF pages and/or text, in place
    images = await load_images(server, take_image_parts(body, server.image_limits))
    images = merge_page_images(body, pages, images)
    # with images, preprocessing (resize, tiling) runs off the event loop
    job = await asyncio.to_thread(prepare_chat, server, body, images) if images else prepare_chat(server, body)
    req, prompt, params = job.req, job.prompt, job.params
    guard_messages(server, req.messages)
    if req.llmkit is not None and images:
        raise APIError(400, "inference-time scaling (llmkit) is not supported with images yet", param="llmkit")
    if req.llmkit is not None:
        return await scaled_chat(server, request, job, _collect)
    request_id = R.new_id("chatcmpl")
    admit = None
    if job.structured is not None:
        grammar = await compile_for_request(server, job.structured, "tools" if job.with_tools else "response_format")
        admit = structured_admit(server, prompt, params, request_id, grammar)
    if req.stream:
        tool_call_format = job.tool_call_format
        return _stream(
            _chat_stream(
                server,
                request,
                req,
                prompt,
                params,
                request_id,
                job.with_tools,
                admit,
                tool_call_format,
                job.reasoning,
            )
        )
    ((choices, cached),) = await _collect(request, [server.run(request, prompt, params, request_id, admit)])
    guard_choices(server, choices)
    generic = job.with_tools and job.tool_call_format == GENERIC
    body = R.chat_response(
        request_id,
        req.model,
        choices,
        len(prompt),
        cached,
        server.engine.tokenizer,
        req.logprobs,
        job.with_tools and not generic,
        job.tool_call_format,
    )
    if generic:
        set_generic_messages(body["choices"], choices)
    if job.reasoning is not None and not job.with_tools:  # with tools, the tool-call parser splits reasoning
        for body_choice in body["choices"]:
            body_choice["message"] = job.reasoning.message(choices[body_choice["index"]].text)
    return JSONResponse(body)


async def _chat_stream(
    server: Server,
    request: Request,
    req: ChatCompletionRequest,
    prompt,
    params,
    request_id: str,
    with_tools: bool,
    admit=None,
    tool_call_format: str = "hermes",
    reasoning: ReplyReasoning | None = None,
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
    tool_streams: dict = {}  # choice index -> ToolCallStream or GenericToolCallStream
    reasoning_streams: dict[int, ReasoningStream] = {}  # choice index -> its reasoning/content splitter
    async for output in guarded_outputs(server, server.run(request, prompt, params, request_id, admit), req.n):
        R.accumulate(choices, output)
        cached = output.num_cached_tokens
        for delta in output.deltas:
            finish = delta.finish_reason
            logprobs = (
                R.chat_logprobs(tokenizer, delta.token_ids, delta.logprobs or [], delta.top_logprobs or [])
                if req.logprobs
                else None
            )
            if with_tools:  # the grammar makes the reply free text or calls: stream content, or each call
                stream = tool_streams.setdefault(delta.index, new_tool_call_stream(tool_call_format))
                payloads = stream.push(delta.text, finish is not None)
                if finish is not None:
                    finish = "tool_calls" if stream.called else finish
                    payloads = payloads or [{}]
            elif reasoning is not None:  # reasoning_content deltas, then content deltas
                splitter = reasoning_streams.setdefault(delta.index, reasoning.stream())
                payloads = splitter.push(delta.text, finish is not None)
                if not payloads and finish is None and logprobs is None:
                    continue  # text held back until it is clear which side of a tag it falls on
                payloads = payloads or [{}]
            else:
                payloads = [{"content": delta.text}]
            for k, payload in enumerate(payloads):
                last = k == len(payloads) - 1
                yield R.sse(
                    R.chat_chunk(
                        request_id,
                        req.model,
                        created,
                        [
                            {
                                "index": delta.index,
                                "delta": payload,
                                "logprobs": logprobs if last else None,
                                "finish_reason": finish if last else None,
                            }
                        ],
                    )
                )
    if req.stream_options and req.stream_options.include_usage:
        completion_tokens = sum(len(c.token_ids) for c in choices.values())
        yield R.sse(R.chat_chunk(request_id, req.model, created, [], R.usage(len(prompt), completion_tokens, cached)))
    yield R.sse("[DONE]")


async def completions(request: Request) -> Response:
    server: Server = request.app.state.server
    job = prepare_completion(server, await server.read_json(request))
    req, prompts, params = job.req, job.prompts, job.params
    guard_prompts(server, req.prompts())
    if req.llmkit is not None:
        return await scaled_completion(server, request, job, _collect)
    request_id = R.new_id("cmpl")
    ids = [f"{request_id}-{i}" for i in range(len(prompts))]
    echoes = [R.EchoedPrompt(text, p) for text, p in zip(job.prompt_texts, prompts, strict=True)] if req.echo else None
    gens = [
        _scoring_prompt(guarded_outputs(server, server.run(request, p, sp, rid), req.n), echoes[i] if echoes else None)
        for i, (p, sp, rid) in enumerate(zip(prompts, params, ids, strict=True))
    ]
    if req.stream:
        return _stream(_completion_stream(req, gens, prompts, echoes, job.echo_only, server, request_id))
    results = await _collect(request, gens)
    for choices, _ in results:
        guard_choices(server, choices)
    per_prompt = [(choices, len(p), cached) for (choices, cached), p in zip(results, prompts, strict=True)]
    return JSONResponse(
        R.completion_response(
            request_id, req.model, per_prompt, server.engine.tokenizer, req.logprobs, req.n, echoes, job.echo_only
        )
    )


async def _scoring_prompt(outputs: AsyncIterator, echo: R.EchoedPrompt | None) -> AsyncIterator:
    """Pass a prompt's outputs on, noting its prompt logprobs in `echo` as soon as they come."""
    async for output in outputs:
        if echo is not None and output.prompt_logprobs is not None:
            echo.logprobs, echo.top_logprobs = output.prompt_logprobs, output.prompt_top_logprobs
        yield output


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
    req: CompletionRequest,
    gens: list[AsyncIterator],
    prompts: list[list[int]],
    echoes: list[R.EchoedPrompt] | None,
    echo_only: bool,
    server: Server,
    request_id: str,
):
    """SSE chunks of every prompt's choices as they come; with echo, a choice's first chunk starts with the
    prompt (and its logprobs), and with `echo_only` (max_tokens 0) that chunk is the whole choice."""
    created = int(time.time())
    tokenizer = server.engine.tokenizer
    completion_tokens, cached_total = 0, 0
    echoed: set[tuple[int, int]] = set()
    async for p, output in _merge(gens):
        cached_total += output.num_cached_tokens if output.finished else 0
        for delta in output.deltas:
            echo = echoes[p] if echoes is not None and (p, delta.index) not in echoed else None
            if echo is None and echo_only:
                continue  # the prompt went out already; what the engine generated after it is dropped
            echoed.add((p, delta.index))
            choice = R.Choice(delta.index, delta.token_ids, delta.text, delta.finish_reason)
            choice.logprobs, choice.top_logprobs = delta.logprobs or [], delta.top_logprobs or []
            completion_tokens += 0 if echo_only else len(delta.token_ids)
            yield R.sse(
                {
                    "id": request_id,
                    "object": "text_completion",
                    "created": created,
                    "model": req.model,
                    "choices": [
                        {
                            "index": p * req.n + delta.index,
                            **R.completion_choice(tokenizer, choice, req.logprobs, echo, echo_only),
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
        except Exception as err:  # after the headers went out, an error travels as a last SSE event
            if not isinstance(err, APIError):
                logger.exception("a stream failed")
                err = APIError(
                    500, "internal error while streaming the response", "server_error", code="internal_error"
                )
            yield R.sse({"error": err.body()})
            yield R.sse("[DONE]")

    return StreamingResponse(guarded(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def list_models(request: Request) -> Response:
    """Every served name, then the embedding model; `max_model_len` (as vLLM names it) is each one's context length,
    `input_modalities` what its requests may hold."""
    server: Server = request.app.state.server
    modalities = ["text", "image"] if server.engine.vision is not None else ["text"]
    models = {name: (server.engine.context_length, modalities) for name in server.served_model_names}
    if server.embeddings is not None:
        models[server.embeddings.name] = (server.embeddings.max_length, ["text"])
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": server.created,
                    "owned_by": "llmkit",
                    "max_model_len": n,
                    "input_modalities": inputs,  # "image": chat messages may hold image_url parts
                }
                for name, (n, inputs) in models.items()
            ],
        }
    )


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    server: Server = request.app.state.server
    return Response(server.metrics.render(), media_type="text/plain; version=0.0.4")


def create_app(server: Server, extra_routes: list[Route] | None = None) -> Starlette:
    """The OpenAI-compatible app over `server`; `extra_routes` (authenticated like /v1) add worker endpoints."""

    async def api_error(request: Request, err: APIError) -> Response:
        return err.response()

    async def http_error(request: Request, err: HTTPException) -> Response:
        code = "not_found" if err.status_code == 404 else None
        return APIError(err.status_code, err.detail, code=code, headers=err.headers).response()

    async def internal_error(request: Request, err: Exception) -> Response:  # sent outside RequestIdMiddleware
        headers = {REQUEST_ID_HEADER: request_id_of(request.scope)}
        return APIError(500, "internal server error", "server_error", code="internal_error", headers=headers).response()

    def authed(handler):
        async def route(request: Request) -> Response:
            server.check_auth(request)
            return await handler(request)

        return route

    routes = [
        Route("/v1/chat/completions", authed(chat_completions), methods=["POST"]),
        Route("/v1/completions", authed(completions), methods=["POST"]),
        Route("/v1/embeddings", authed(create_embeddings), methods=["POST"]),
        Route("/v1/models", authed(list_models), methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    routes += [Route(r.path, authed(r.endpoint), methods=list(r.methods or ())) for r in extra_routes or []]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        structured = getattr(server.engine, "structured", None)
        if structured is not None:  # the first structured request should not wait for the vocabulary index
            server.prewarmed = structured.prewarm()
        yield
        server.async_engine.shutdown()
        if server.embeddings is not None:
            server.embeddings.close()

    handlers = {APIError: api_error, HTTPException: http_error, Exception: internal_error}
    app = Starlette(
        routes=routes, exception_handlers=handlers, lifespan=lifespan, middleware=[Middleware(RequestIdMiddleware)]
    )
    app.state.server = server
    return app
