"""`x-request-id` on every response: the client's own id echoed back, or a new one.

A pure ASGI middleware (streaming responses pass through untouched). The id is also left in the
scope under `SCOPE_KEY`, for responses sent outside the middleware (Starlette's 500 handler).
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
SCOPE_KEY = "llmkit.request_id"
_ACCEPTABLE = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII without spaces: safe to echo in a header


def request_id_of(scope: Scope) -> str:
    """The request's id: set by the middleware, else (a request that never reached it) a new one."""
    return scope.get(SCOPE_KEY) or uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = next((v.decode("latin-1") for k, v in scope["headers"] if k == HEADER.encode()), "")
        request_id = sent if _ACCEPTABLE.fullmatch(sent) else uuid.uuid4().hex
        scope[SCOPE_KEY] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER.encode()]
                message = {**message, "headers": [*headers, (HEADER.encode(), request_id.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)
