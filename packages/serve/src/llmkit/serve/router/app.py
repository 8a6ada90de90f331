"""The router's HTTP front: the OpenAI endpoints of one `llmkit serve`, forwarded by a routing policy.

The front authenticates clients (`--api-key`), parses the body once, and hands a `Call` to the
policy (replicas: `ReplicaPolicy`; a prefill/decode pair: `PrefillDecodePolicy`). Every call to a
backend carries the internal secret and the client's own `Authorization` header, so backends
started with `--api-key` check the client's key as well.
"""

from __future__ import annotations

import contextlib
import hmac
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..disaggregated.internal_auth import INTERNAL_SECRET_HEADER, require_internal_secret

PASSED_HEADERS = ("content-type", "x-request-id", "retry-after")


@dataclass(frozen=True)
class Call:
    """One client request on its way to a backend."""

    endpoint: str  # "chat", "completions" or "embeddings"
    path: str  # the OpenAI path, e.g. "/v1/chat/completions"
    raw: bytes
    payload: Any
    headers: dict[str, str]  # for the backend: the internal secret, the client's authorization, content-type

    @property
    def stream(self) -> bool:
        return isinstance(self.payload, dict) and bool(self.payload.get("stream"))


class RoutingPolicy(Protocol):
    async def start(self, client: httpx.AsyncClient) -> None: ...
    async def stop(self) -> None: ...
    async def forward(self, call: Call, client: httpx.AsyncClient) -> Response: ...
    def model_urls(self) -> list[str]: ...  # where /v1/models may be asked, in order
    async def health(self, client: httpx.AsyncClient) -> tuple[bool, dict]: ...
    def metrics(self) -> list[tuple[str, str, dict[str, str], float]]: ...  # (name, help, labels, value)


def error_response(
    status: int, message: str, code: str, kind: str = "server_error", headers: dict | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def sse_error(message: str, code: str) -> bytes:
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": code}}
    return b"data: " + orjson.dumps(body) + b"\n\ndata: [DONE]\n\n"


def passed_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in PASSED_HEADERS if name in response.headers}


def relayed(response: httpx.Response) -> Response:
    """A backend's whole (non-streaming) answer, as the client gets it."""
    return Response(response.content, response.status_code, headers=passed_headers(response))


def _render_metrics(samples: list[tuple[str, str, dict[str, str], float]]) -> bytes:
    lines, described = [], set()
    for name, description, labels, value in samples:
        if name not in described:
            lines += [f"# HELP {name} {description}", f"# TYPE {name} gauge"]
            described.add(name)
        label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
    return ("\n".join(lines) + "\n").encode()


def create_router(
    policy: RoutingPolicy, *, internal_secret: str, api_key: str | None = None, timeout: float = 600.0
) -> Starlette:
    internal_secret = require_internal_secret(internal_secret, "router")
    client = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=512))

    def backend_headers(request: Request) -> dict[str, str]:
        headers = {INTERNAL_SECRET_HEADER: internal_secret, "content-type": "application/json"}
        if "authorization" in request.headers:
            headers["authorization"] = request.headers["authorization"]
        if "x-request-id" in request.headers:
            headers["x-request-id"] = request.headers["x-request-id"]
        return headers

    def authorized(request: Request) -> bool:
        if api_key is None:
            return True
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        return hmac.compare_digest(token.encode(), api_key.encode())

    def unauthorized() -> Response:
        return error_response(401, "invalid or missing API key", "invalid_api_key", "authentication_error")

    def endpoint(name: str, path: str):
        async def handle(request: Request) -> Response:
            if not authorized(request):
                return unauthorized()
            raw = await request.body()
            try:
                payload = orjson.loads(raw)
            except orjson.JSONDecodeError as err:
                return error_response(
                    400, f"the request body is not valid JSON: {err}", "invalid_json", "invalid_request_error"
                )
            return await policy.forward(Call(name, path, raw, payload, backend_headers(request)), client)

        return handle

    async def models(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        for url in policy.model_urls():
            with contextlib.suppress(httpx.HTTPError):
                return relayed(await client.get(f"{url}/v1/models", headers=backend_headers(request), timeout=10))
        return error_response(503, "no backend is reachable", "no_backend", headers={"retry-after": "1"})

    async def health(request: Request) -> Response:
        ok, detail = await policy.health(client)
        return JSONResponse({"status": "ok" if ok else "degraded", **detail}, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(_render_metrics(policy.metrics()), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await policy.start(client)
        try:
            yield
        finally:
            await policy.stop()
            await client.aclose()

    return Starlette(
        routes=[
            Route("/v1/chat/completions", endpoint("chat", "/v1/chat/completions"), methods=["POST"]),
            Route("/v1/completions", endpoint("completions", "/v1/completions"), methods=["POST"]),
            Route("/v1/embeddings", endpoint("embeddings", "/v1/embeddings"), methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
