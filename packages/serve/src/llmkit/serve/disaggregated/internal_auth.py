"""The shared secret that the router and the prefill/decode workers present to each other.

Workers are internal: every request to a worker except `/health` and `/metrics` must carry the
secret in `x-llmkit-internal-secret` (compared in constant time), so nobody but the router can ask
for a prefill, a send or a KV import. A forged request is refused before it reaches the engine or
the transfer threads. The client's own `Authorization` still travels to workers that set `--api-key`.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from llmkit.core.errors import LlmkitError

INTERNAL_SECRET_HEADER = "x-llmkit-internal-secret"
INTERNAL_SECRET_ENV = "LLMKIT_INTERNAL_SECRET"
MIN_SECRET_LENGTH = 16
OPEN_PATHS = frozenset({"/health", "/metrics"})


def require_internal_secret(secret: str | None, role: str) -> str:
    """The secret a router or worker must be started with; refuse to start without a usable one."""
    if not secret:
        raise LlmkitError(
            f"--role {role} needs a shared secret for the internal endpoints: set {INTERNAL_SECRET_ENV} "
            "(or --internal-secret) to the same random value on the router and both workers, e.g. "
            '`export LLMKIT_INTERNAL_SECRET=$(python -c "import secrets; print(secrets.token_hex(32))")`'
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise LlmkitError(f"the internal secret must have at least {MIN_SECRET_LENGTH} characters; got {len(secret)}")
    return secret


def secret_matches(presented: str | None, secret: str) -> bool:
    return hmac.compare_digest((presented or "").encode(), secret.encode())


class InternalOnly:
    """ASGI middleware: answer 401 (OpenAI's error shape) to any request without the secret."""

    def __init__(self, app: ASGIApp, secret: str):
        self.app = app
        self.secret = require_internal_secret(secret, "worker")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] not in OPEN_PATHS
            and not secret_matches(Headers(scope=scope).get(INTERNAL_SECRET_HEADER), self.secret)
        ):
            error = {
                "message": f"this is an internal worker: requests must come from the router ({INTERNAL_SECRET_HEADER})",
                "type": "authentication_error",
                "param": None,
                "code": "invalid_internal_secret",
            }
            await JSONResponse({"error": error}, status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)
