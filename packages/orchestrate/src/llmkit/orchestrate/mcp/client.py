"""Tools from any MCP server over stdio: the server runs as a subprocess, its tools become `Tool`s.

The MCP session is asynchronous; it lives on an event loop in a background thread for the
toolbox's lifetime, and each tool call is a thread-safe request to it.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import mcp_types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from ..errors import MCPError, ToolError
from ..tools.tool import PERMISSIONS, Permission, Tool
from ..tools.toolbox import Toolbox
from .foreign_text import MAX_DESCRIPTION_CHARS, foreign_description, foreign_schema

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def content_text(blocks: Sequence[Any]) -> str:
    """An MCP result's content as text: text blocks as they are, other blocks named by their type."""
    parts = []
    for block in blocks:
        if getattr(block, "type", None) == "text":
            parts.append(block.text)
        else:
            parts.append(f"[{getattr(block, 'type', 'content')} content]")
    return "\n".join(parts)


def server_errlog() -> TextIO:
    """Where the server's stderr goes: ours when it is a real file (not a notebook's or pytest's stand-in)."""
    try:
        sys.stderr.fileno()
        return sys.stderr
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__


class MCPToolbox(Toolbox):
    """The tools of the MCP server started by `command` (a string split like a shell, or a list).

    The server is foreign code: its tools require approval (`permission`, or a policy, can allow them
    explicitly), and its descriptions reach the model cleaned, clipped to `max_description_chars` and
    delimited as data (`foreign_text`).
    """

    def __init__(
        self,
        command: str | Sequence[str],
        env: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        prefix: str = "",
        permission: Permission = "requires_approval",
        max_description_chars: int = MAX_DESCRIPTION_CHARS,
    ):
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not argv:
            raise MCPError("an MCP server needs a command")
        if permission not in PERMISSIONS:
            raise MCPError(f"permission must be one of {PERMISSIONS}, got {permission!r}")
        self.command, self.timeout_s, self.prefix = argv, timeout_s, prefix
        self.permission, self.max_description_chars = permission, max_description_chars
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._session: ClientSession | None = None
        self._listed: list[Any] = []
        self._failure: BaseException | None = None
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(env) if env is not None else None)
        self._thread = threading.Thread(target=self._run, args=(params,), name="llmkit-mcp", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._failure is not None:
            self.close()
            reason = self._failure or f"no answer within {timeout_s:g} s"
            raise MCPError(f"MCP server {' '.join(argv)!r} did not start: {reason}")
        self._tools = [self._wrap(listed) for listed in self._listed]

    def _run(self, params: StdioServerParameters) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve(params))
        except BaseException as err:  # reported to the constructor, or after close
            self._failure = self._failure or err
        finally:
            self._ready.set()

    async def _serve(self, params: StdioServerParameters) -> None:
        self._stop = asyncio.Event()
        async with stdio_client(params, errlog=server_errlog()) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            self._listed = list((await session.list_tools()).tools)
            self._session = session
            self._ready.set()
            await self._stop.wait()

    def _wrap(self, listed: Any) -> Tool:
        name = self.prefix + _UNSAFE.sub("_", listed.name)[: 64 - len(self.prefix)]
        schema = foreign_schema(dict(listed.input_schema or {"type": "object", "properties": {}}))
        description = foreign_description(
            listed.description or "(no description)", name, shlex.join(self.command), self.max_description_chars
        )

        def call(**arguments: Any) -> str:
            return self.call(listed.name, arguments)

        return Tool(name, description, schema, call, permission=self.permission)

    def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Call tool `name` on the server; an error result raises ToolError with the server's message."""
        if self._session is None or self._failure is not None:
            raise ToolError(f"the MCP server {self.command[0]!r} is not running")
        future = asyncio.run_coroutine_threadsafe(self._session.call_tool(name, arguments), self._loop)
        try:
            result: mcp_types.CallToolResult = future.result(self.timeout_s)
        except TimeoutError:
            future.cancel()
            raise ToolError(f"MCP tool {name} gave no result within {self.timeout_s:g} s") from None
        except Exception as err:
            raise ToolError(f"MCP tool {name} failed: {type(err).__name__}: {err}") from None
        text = content_text(result.content)
        if result.is_error:
            raise ToolError(text or f"MCP tool {name} reported an error")
        return text

    def tools(self) -> list[Tool]:
        return list(self._tools)

    def close(self) -> None:
        if self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()
