"""The official MCP Python client, using only what an editor's MCP config file says.

Usage: client.py FILE KEY NAME
  FILE  an editor's MCP config (VS Code mcp.json: KEY `servers`; Roo Code: `mcpServers`)
  NAME  the server entry to use: its `url` and `headers` are all the client gets
Connects over streamable HTTP, initializes, calls the `add` tool with 2 and 3, and prints
`RESULT 5` on success. Any failure exits non-zero with the reason on stderr.
"""

import asyncio
import json
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def run(url: str, headers: dict[str, str]) -> str:
    async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await session.initialize()
                result = await session.call_tool("add", {"a": 2, "b": 3})
                if result.is_error:
                    raise RuntimeError(f"tool error: {result.content}")
                return result.content[0].text


def main() -> int:
    path, key, name = sys.argv[1:4]
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    entry = doc[key][name]
    headers = {str(k): str(v) for k, v in (entry.get("headers") or {}).items()}
    try:
        text = asyncio.run(asyncio.wait_for(run(entry["url"], headers), 30))
    except BaseException as e:  # noqa: BLE001 - report any failure, including task groups
        print(f"client failed: {type(e).__name__}: {e!r}", file=sys.stderr)
        return 1
    print(f"RESULT {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
