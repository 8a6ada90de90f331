"""The prefill and decode worker roles, added to a normal llmkit server.

Prefill worker: `POST /internal/prefill` computes a prompt (one token, blocks kept) and answers
with a transfer id; `POST /internal/send` sends those blocks to the decode worker and frees them.
Blocks never sent are freed after `hold_seconds` (see `held`). Decode worker: a request carrying
the header `x-llmkit-transfer: ID:BLOCKS` receives its prompt's K/V instead of computing it.
Both answer only requests that carry the internal secret (see `internal_auth`).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from llmkit.core.errors import InvalidParameterError

from ..async_engine import EngineOverloaded
from ..server.errors import APIError
from ..server.preparation import prepare_chat, prepare_completion
from ..server.state import Server
from . import remote_kv
from .held import HeldPrefills
from .internal_auth import InternalOnly
from .kv_transfer import MAX_TRANSFER_ID, KVTransport

TRANSFER_HEADER = "x-llmkit-transfer"


class PrefillWorker:
    def __init__(self, server: Server, transport: KVTransport, hold_seconds: float = 120.0):
        self.server, self.transport = server, transport
        self.held = HeldPrefills(server, hold_seconds)

    def routes(self) -> list[Route]:
        return [
            Route("/internal/prefill", self.prefill, methods=["POST"]),
            Route("/internal/send", self.send, methods=["POST"]),
        ]

    async def prefill(self, request: Request) -> Response:
        server = self.server
        body = await server.read_json(request)
        endpoint, payload = body.get("endpoint"), body.get("request")
        if endpoint not in ("chat", "completions") or not isinstance(payload, dict):
            raise APIError(400, "expected {'endpoint': 'chat' | 'completions', 'request': {...}}")
        if endpoint == "chat":
            job = prepare_chat(server, payload)
            prompt, params = job.prompt, job.params
        else:
            job = prepare_completion(server, payload)
            if len(job.prompts) != 1:
                raise APIError(400, "disaggregated serving takes one prompt per completion request", param="prompt")
            prompt, params = job.prompts[0], job.params[0]
        if params.n != 1:
            raise APIError(400, "disaggregated serving generates one sequence per request (n=1)", param="n")
        transfer_id, seq = await self.held.prefill(prompt, params)
        return JSONResponse(
            {"transfer_id": transfer_id, "num_blocks": len(seq.block_table), "prompt_tokens": len(prompt)}
        )

    async def send(self, request: Request) -> Response:
        transfer_id = (await self.server.read_json(request)).get("transfer_id")
        seq = self.held.take(transfer_id) if isinstance(transfer_id, int) else None
        if seq is None:
            raise APIError(404, f"no prefilled prompt waits under transfer id {transfer_id!r}")
        engine, call = self.server.engine, self.server.async_engine.call
        try:
            tensors = await asyncio.wrap_future(call(lambda: remote_kv.export_kv(engine, seq)))
            sent = await asyncio.wrap_future(self.transport.send(tensors, transfer_id))
        except Exception as err:
            raise APIError(502, f"sending the KV blocks to the decode worker failed: {err}", "server_error") from None
        finally:
            await asyncio.wrap_future(self.held.release(seq))
        return JSONResponse({"bytes": sent})


class DecodeWorker:
    """Installs itself as the server's admission: imported prompts skip their prefill. Prompts
    waiting for their K/V count as queued, with the waiting ones, against `max_waiting`."""

    def __init__(self, server: Server, transport: KVTransport):
        self.server, self.transport = server, transport
        self._importing: set[str] = set()  # request ids whose K/V are on the way; engine thread only
        server.admission = self.admit

    def _check_room(self) -> None:
        """On the engine thread: refuse a request when `max_waiting` are already queued."""
        queued = len(self.server.engine.scheduler.waiting) + len(self._importing)
        if queued >= self.server.async_engine.max_waiting:
            raise EngineOverloaded(f"{queued} requests are already waiting")

    async def admit(self, request: Request, prompt: list[int], params, request_id: str) -> None:
        server, engine = self.server, self.server.engine
        call = server.async_engine.call
        header = request.headers.get(TRANSFER_HEADER)
        if header is None:

            def add() -> None:
                self._check_room()
                engine.add_request(prompt, params, request_id)

            await asyncio.wrap_future(call(add))
            return
        transfer_id, num_blocks = parse_transfer_header(header)

        def reserve():
            self._check_room()
            seq = remote_kv.reserve_import(engine, prompt, params, request_id)
            self._importing.add(request_id)
            return seq

        try:
            seq = await asyncio.wrap_future(call(reserve))
        except InvalidParameterError as err:
            raise APIError(503, str(err), "server_error", code="overloaded", headers={"Retry-After": "1"}) from None
        try:
            await self._import(seq, transfer_id, num_blocks)
        finally:
            call(lambda: self._importing.discard(request_id))

    async def _import(self, seq, transfer_id: int, num_blocks: int) -> None:
        engine, call = self.server.engine, self.server.async_engine.call
        if len(seq.block_table) != num_blocks:
            await asyncio.wrap_future(call(lambda: remote_kv.abandon_import(engine, seq)))
            raise APIError(
                400, f"the prefill worker sent {num_blocks} blocks; this prompt needs {len(seq.block_table)}"
            )
        try:
            tensors = await asyncio.wrap_future(
                self.transport.recv(remote_kv.kv_shapes(engine, num_blocks), transfer_id)
            )
        except Exception as err:
            await asyncio.wrap_future(call(lambda: remote_kv.abandon_import(engine, seq)))
            raise APIError(
                502, f"receiving the KV blocks from the prefill worker failed: {err}", "server_error"
            ) from None
        await asyncio.wrap_future(call(lambda: remote_kv.finish_import(engine, seq, tensors)))


def parse_transfer_header(header: str) -> tuple[int, int]:
    """`ID:BLOCKS` -> (transfer id, number of blocks), both in range, or a 400."""
    try:
        transfer_id, num_blocks = (int(part) for part in header.split(":"))
    except ValueError:
        raise APIError(400, f"malformed {TRANSFER_HEADER} header {header!r}; expected ID:BLOCKS") from None
    if not 0 <= transfer_id < MAX_TRANSFER_ID or num_blocks < 1:
        raise APIError(400, f"{TRANSFER_HEADER} header {header!r} is out of range")
    return transfer_id, num_blocks


def create_worker_app(
    server: Server, role: str, transport: KVTransport, internal_secret: str, hold_seconds: float = 120.0
) -> ASGIApp:
    """A prefill or decode worker: the server's routes and the role's, all behind the internal secret."""
    from ..server.app import create_app

    if role == "prefill":
        routes = PrefillWorker(server, transport, hold_seconds).routes()
    elif role == "decode":
        DecodeWorker(server, transport)
        routes = []
    else:
        raise ValueError(f"a worker's role is prefill or decode, got {role!r}")
    return InternalOnly(create_app(server, routes), internal_secret)
