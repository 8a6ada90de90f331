"""MCP: tools from any MCP server over stdio (`MCPToolbox`), and llmkit tools served over MCP (`serve_stdio`)."""

from .client import MCPToolbox
from .server import mcp_server, serve_stdio

__all__ = ["MCPToolbox", "mcp_server", "serve_stdio"]
