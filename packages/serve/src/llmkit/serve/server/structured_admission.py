"""Server side of structured outputs: compile a request's grammar off the event loop (cached by content
hash, shared with the engine's compiler) and hand the compiled grammar to the engine with the request."""

from __future__ import annotations

import asyncio

from llmkit.core.structured import CompiledGrammar, GrammarError, StructuredOutput

from ..async_engine import EngineOverloaded
from .errors import APIError


async def compile_for_request(server, spec: StructuredOutput, param: str) -> CompiledGrammar:
    """The compiled grammar, or a 400 naming what is unsupported; other requests keep decoding meanwhile."""
    try:
        return await asyncio.wrap_future(server.engine.structured.compiler.submit(spec))
    except GrammarError as err:
        raise APIError(400, str(err), param=param, code="invalid_value") from None


def structured_admit(server, prompt, params, request_id: str, grammar: CompiledGrammar):
    """An admission callable (see Server.run) that queues the request with its grammar."""

    async def admit() -> None:
        def add() -> str:
            waiting = len(server.engine.scheduler.waiting)
            if waiting >= server.async_engine.max_waiting:
                raise EngineOverloaded(f"{waiting} requests are already waiting")
            return server.engine.add_request(prompt, params, request_id, structured=grammar)

        await asyncio.wrap_future(server.async_engine.call(add))

    return admit
