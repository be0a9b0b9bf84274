"""An MCP client nobody here wrote (the official Python SDK, `mcp` on PyPI) driving `sandbox mcp`.

Usage: python3 interop_client.py SERVER_COMMAND [ARG...]
       python3 interop_client.py --http URL TOKEN

Spawns the server over stdio (or connects to `sandbox mcp --http` with a bearer token), lists its tools, creates a sandbox, runs print(6*7), writes and
reads a file byte for byte (text and non-UTF-8 bytes through base64), runs a long command
through exec_start/exec_poll, deletes the sandbox. Prints one JSON line of findings and exits
0 when everything held, 1 otherwise (with the reason on stderr).
"""

import asyncio
import base64
import contextlib
import json
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def payload(result):
    """The tool result's JSON (its structured content, else its text)."""
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise AssertionError(f"tool error: {text}")
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


@contextlib.asynccontextmanager
async def connect(argv):
    """The transport's streams: stdio to a spawned server, or streamable HTTP."""
    if argv[0] == "--http":
        url, token = argv[1], argv[2]
        client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with client, streamable_http_client(url, http_client=client) as (read, write):
            yield read, write
    else:
        server = StdioServerParameters(command=argv[0], args=argv[1:])
        async with stdio_client(server) as (read, write):
            yield read, write


async def run(argv):
    findings = {}
    async with connect(argv) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            findings["server"] = init.server_info.name
            findings["protocol_version"] = init.protocol_version

            tools = (await session.list_tools()).tools
            names = sorted(t.name for t in tools)
            findings["tools"] = names
            for needed in ["create_sandbox", "exec", "exec_start", "exec_poll",
                           "read_file", "write_file", "delete_sandbox"]:
                assert needed in names, f"missing tool {needed}"
            by_name = {t.name: t for t in tools}
            assert by_name["list_sandboxes"].annotations.read_only_hint is True
            assert by_name["delete_sandbox"].annotations.destructive_hint is True

            created = payload(await session.call_tool("create_sandbox", {"image": "python"}))
            name = created["sandbox"]
            findings["sandbox"] = name

            out = payload(await session.call_tool(
                "exec", {"sandbox": name, "command": "python3 -c 'print(6*7)'"}))
            assert out["stdout"] == "42\n", out
            assert out["exit_code"] == 0, out
            findings["print_6x7"] = out["stdout"]

            text = "line 1\n\nline 3 \u00e9\r\n"
            payload(await session.call_tool(
                "write_file", {"sandbox": name, "path": "notes/a.txt", "text": text}))
            back = payload(await session.call_tool(
                "read_file", {"sandbox": name, "path": "notes/a.txt"}))
            assert back["text"] == text, back

            raw = bytes(range(256)) + b"\xff\xfe\x00end"
            payload(await session.call_tool(
                "write_file",
                {"sandbox": name, "path": "bin/raw.bin",
                 "base64": base64.b64encode(raw).decode()}))
            back = payload(await session.call_tool(
                "read_file", {"sandbox": name, "path": "bin/raw.bin"}))
            assert base64.b64decode(back["base64"]) == raw, back
            findings["binary_round_trip_bytes"] = len(raw)

            started = payload(await session.call_tool(
                "exec_start",
                {"sandbox": name,
                 "command": "for i in 1 2 3; do echo tick $i; sleep 0.5; done; exit 3"}))
            exec_id = started["exec_id"]
            stdout = ""
            polls = 0
            deadline = time.monotonic() + 60
            while True:
                assert time.monotonic() < deadline, "exec_poll never saw the end"
                polled = payload(await session.call_tool(
                    "exec_poll", {"exec_id": exec_id, "wait_seconds": 5}))
                polls += 1
                stdout += polled["stdout"]
                if not polled["running"] and not polled["more_output"]:
                    break
            assert stdout == "tick 1\ntick 2\ntick 3\n", stdout
            assert polled["exit_code"] == 3, polled
            findings["exec_poll_calls"] = polls

            bad = await session.call_tool("exec", {"sandbox": name})
            assert bad.is_error, bad
            findings["bad_argument_is_tool_error"] = True

            deleted = payload(await session.call_tool("delete_sandbox", {"sandbox": name}))
            assert deleted["deleted"] == name, deleted
            listed = payload(await session.call_tool("list_sandboxes", {}))
            assert all(s["sandbox"] != name for s in listed["sandboxes"]), listed
    print(json.dumps(findings))


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(run(sys.argv[1:]))
    except AssertionError as e:
        print(f"interop check failed: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
