"""llmkit tools as an MCP server (stdio): list them with their JSON Schemas, validate and run calls."""

from __future__ import annotations

import anyio
import anyio.to_thread
import mcp_types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from ..errors import ToolArgumentError, ToolError
from ..tools.results import limit_text, render_value
from ..tools.toolbox import ToolSet


def _text_result(text: str, is_error: bool = False) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text=text)], is_error=is_error)


def mcp_server(tools: ToolSet, name: str = "llmkit") -> Server:
    """An MCP server over `tools`: invalid arguments and tool errors are error results, never crashes."""

    async def list_tools(ctx, params) -> mcp_types.ListToolsResult:
        listed = [mcp_types.Tool(name=t.name, description=t.description, input_schema=t.parameters) for t in tools]
        return mcp_types.ListToolsResult(tools=listed)

    async def call_tool(ctx, params: mcp_types.CallToolRequestParams) -> mcp_types.CallToolResult:
        found = tools.get(params.name)
        if found is None:
            return _text_result(f"no tool named {params.name!r}; tools: {', '.join(tools.names)}", True)
        try:
            kwargs = found.validate(params.arguments or {})
            value = await anyio.to_thread.run_sync(lambda: found.run(kwargs))
        except ToolArgumentError as err:
            return _text_result(f"invalid arguments for {found.name}: {err}", True)
        except ToolError as err:
            return _text_result(str(err), True)
        except Exception as err:
            return _text_result(f"{found.name} failed: {type(err).__name__}: {err}", True)
        text, _ = limit_text(render_value(value), found.max_result_chars)
        return _text_result(text)

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


def serve_stdio(tools: ToolSet, name: str = "llmkit") -> None:
    """Serve `tools` over stdin/stdout until the client disconnects."""
    server = mcp_server(tools, name)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
