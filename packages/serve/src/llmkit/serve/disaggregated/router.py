"""The router: the OpenAI endpoints in front of one prefill and one decode worker.

Each request is prefilled on the prefill worker, its KV blocks are sent to the decode worker
(torch.distributed, worker to worker), and the decode worker's response is relayed to the client.
A decode worker that fails mid-stream ends the stream with an error event, never a hang. Every
call to a worker carries the internal secret and the client's own `Authorization` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .internal_auth import INTERNAL_SECRET_HEADER, require_internal_secret
from .workers import TRANSFER_HEADER


def _error(status: int, message: str, code: str, kind: str = "server_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)


def _sse_error(message: str) -> bytes:
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": "worker_failed"}}
    return b"data: " + orjson.dumps(body) + b"\n\ndata: [DONE]\n\n"


def create_router(
    prefill_url: str, decode_url: str, *, internal_secret: str, api_key: str | None = None, timeout: float = 600.0
) -> Starlette:
    internal_secret = require_internal_secret(internal_secret, "router")
    client = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=512))

    def worker_headers(request: Request) -> dict[str, str]:
        """What every call to a worker carries: the secret, and the client's key for workers that check one."""
        headers = {INTERNAL_SECRET_HEADER: internal_secret}
        if "authorization" in request.headers:
            headers["authorization"] = request.headers["authorization"]
        return headers

    def authorized(request: Request) -> bool:
        if api_key is None:
            return True
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        return hmac.compare_digest(token.encode(), api_key.encode())

    async def forward(request: Request, endpoint: str, path: str) -> Response:
        if not authorized(request):
            return _error(401, "invalid or missing API key", "invalid_api_key", "authentication_error")
        raw = await request.body()
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            return _error(400, f"the request body is not valid JSON: {err}", "invalid_json", "invalid_request_error")
        try:
            prefilled = await client.post(
                f"{prefill_url}/internal/prefill",
                json={"endpoint": endpoint, "request": payload},
                headers=worker_headers(request),
            )
        except httpx.HTTPError as err:
            return _error(502, f"the prefill worker is unreachable: {err}", "worker_failed")
        if prefilled.status_code != 200:
            return Response(prefilled.content, prefilled.status_code, media_type="application/json")
        info = prefilled.json()
        send = asyncio.ensure_future(
            client.post(
                f"{prefill_url}/internal/send",
                json={"transfer_id": info["transfer_id"]},
                headers=worker_headers(request),
            )
        )
        headers = {
            **worker_headers(request),
            TRANSFER_HEADER: f"{info['transfer_id']}:{info['num_blocks']}",
            "content-type": "application/json",
        }
        if isinstance(payload, dict) and payload.get("stream"):
            return StreamingResponse(_relay(f"{decode_url}{path}", raw, headers, send), media_type="text/event-stream")
        try:
            decoded = await client.post(f"{decode_url}{path}", content=raw, headers=headers)
        except httpx.HTTPError as err:
            return _error(502, f"the decode worker failed: {err}", "worker_failed")
        finally:
            await _settle(send)
        return Response(decoded.content, decoded.status_code, media_type="application/json")

    async def _relay(url: str, raw: bytes, headers: dict, send: asyncio.Future):
        try:
            async with client.stream("POST", url, content=raw, headers=headers) as response:
                async for chunk in response.aiter_raw():
                    yield chunk
        except httpx.HTTPError as err:
            yield _sse_error(f"the decode worker failed mid-stream: {type(err).__name__}: {err}")
        finally:
            await _settle(send)

    async def _settle(send: asyncio.Future) -> None:
        with contextlib.suppress(httpx.HTTPError):
            await send

    async def chat(request: Request) -> Response:
        return await forward(request, "chat", "/v1/chat/completions")

    async def completions(request: Request) -> Response:
        return await forward(request, "completions", "/v1/completions")

    async def models(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "invalid or missing API key", "invalid_api_key", "authentication_error")
        response = await client.get(f"{decode_url}/v1/models", headers=worker_headers(request))
        return Response(response.content, response.status_code, media_type="application/json")

    async def health(request: Request) -> Response:
        states = {}
        for name, url in (("prefill", prefill_url), ("decode", decode_url)):
            try:
                states[name] = (await client.get(f"{url}/health", timeout=5)).status_code == 200
            except httpx.HTTPError:
                states[name] = False
        return JSONResponse(
            {"status": "ok" if all(states.values()) else "degraded", "workers": states},
            status_code=200 if all(states.values()) else 503,
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await client.aclose()

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
