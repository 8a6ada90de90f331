"""The prefill and decode worker roles, added to a normal llmkit server.

Prefill worker: `POST /internal/prefill` computes a prompt (one token, blocks kept) and answers
with a transfer id; `POST /internal/send` sends those blocks to the decode worker and frees them.
Blocks never sent are freed after `hold_seconds`. Decode worker: a request carrying the header
`x-llmkit-transfer: ID:BLOCKS` receives its prompt's K/V instead of computing it.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llmkit.core.errors import InvalidParameterError

from ..server.errors import APIError
from ..server.preparation import prepare_chat, prepare_completion
from ..server.responses import new_id
from ..server.state import Server
from . import handoff
from .kv_transfer import KVTransport

TRANSFER_HEADER = "x-llmkit-transfer"


class PrefillWorker:
    def __init__(self, server: Server, transport: KVTransport, hold_seconds: float = 120.0):
        self.server, self.transport, self.hold_seconds = server, transport, hold_seconds
        self.held: dict[int, tuple[object, float]] = {}
        self._ids = itertools.count()

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
        request_id = new_id("prefill")
        held = {}

        async def admit() -> None:
            engine = server.engine
            held["seq"] = await asyncio.wrap_future(
                server.async_engine.call(lambda: handoff.start_held_prefill(engine, prompt, params, request_id))
            )

        async for _ in server.run(request, prompt, params, request_id, admit):
            pass
        self._reap()
        transfer_id = next(self._ids)
        seq = held["seq"]
        self.held[transfer_id] = (seq, time.monotonic())
        return JSONResponse(
            {"transfer_id": transfer_id, "num_blocks": len(seq.block_table), "prompt_tokens": len(prompt)}
        )

    async def send(self, request: Request) -> Response:
        body = await self.server.read_json(request)
        entry = self.held.pop(body.get("transfer_id"), None)
        if entry is None:
            raise APIError(404, f"no prefilled prompt waits under transfer id {body.get('transfer_id')!r}")
        seq = entry[0]
        engine, call = self.server.engine, self.server.async_engine.call
        try:
            tensors = await asyncio.wrap_future(call(lambda: handoff.export_kv(engine, seq)))
            sent = await asyncio.wrap_future(self.transport.send(tensors, body["transfer_id"]))
        except Exception as err:
            raise APIError(502, f"sending the KV blocks to the decode worker failed: {err}", "server_error") from None
        finally:
            await asyncio.wrap_future(call(lambda: handoff.release_held(engine, seq)))
        return JSONResponse({"bytes": sent})

    def _reap(self) -> None:
        """Free prefills nobody asked to send within `hold_seconds`."""
        now, engine = time.monotonic(), self.server.engine
        for transfer_id, (seq, since) in list(self.held.items()):
            if now - since > self.hold_seconds:
                del self.held[transfer_id]
                self.server.async_engine.call(lambda seq=seq: handoff.release_held(engine, seq))


class DecodeWorker:
    """Installs itself as the server's admission: imported prompts skip their prefill."""

    def __init__(self, server: Server, transport: KVTransport):
        self.server, self.transport = server, transport
        server.admission = self.admit

    async def admit(self, request: Request, prompt: list[int], params, request_id: str) -> None:
        server, engine = self.server, self.server.engine
        call = server.async_engine.call
        header = request.headers.get(TRANSFER_HEADER)
        if header is None:
            await asyncio.wrap_future(call(lambda: engine.add_request(prompt, params, request_id)))
            return
        try:
            transfer_id, num_blocks = (int(part) for part in header.split(":"))
        except ValueError:
            raise APIError(400, f"malformed {TRANSFER_HEADER} header {header!r}; expected ID:BLOCKS") from None
        try:
            seq = await asyncio.wrap_future(call(lambda: handoff.reserve_import(engine, prompt, params, request_id)))
        except InvalidParameterError as err:
            raise APIError(503, str(err), "server_error", code="overloaded", headers={"Retry-After": "1"}) from None
        if len(seq.block_table) != num_blocks:
            await asyncio.wrap_future(call(lambda: handoff.abandon_import(engine, seq)))
            raise APIError(
                400, f"the prefill worker sent {num_blocks} blocks; this prompt needs {len(seq.block_table)}"
            )
        try:
            tensors = await asyncio.wrap_future(self.transport.recv(handoff.kv_shapes(engine, num_blocks), transfer_id))
        except Exception as err:
            await asyncio.wrap_future(call(lambda: handoff.abandon_import(engine, seq)))
            raise APIError(
                502, f"receiving the KV blocks from the prefill worker failed: {err}", "server_error"
            ) from None
        await asyncio.wrap_future(call(lambda: handoff.finish_import(engine, seq, tensors)))
