"""Calling the MCP server's tools through the mcp package's in-memory client (the test process
stays unpatched), shared by the MCP tests."""

from __future__ import annotations

import json
from typing import Any

import anyio
from mcp import Client

from titan_sdk.mcp_server import build_server


def call(*calls: tuple[str, dict[str, Any]], server: Any = None) -> list[dict[str, Any]]:
    """Call the tools in order through one in-memory session; their JSON results."""
    async def session() -> list[dict[str, Any]]:
        results = []
        async with Client(server or build_server()) as client:
            for name, arguments in calls:
                result = await client.call_tool(name, arguments)
                assert len(result.content) == 1, result
                results.append(json.loads(result.content[0].text))
        return results
    return anyio.run(session)


def one(name: str, **arguments: Any) -> dict[str, Any]:
    return call((name, arguments))[0]
