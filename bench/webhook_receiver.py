"""A webhook receiver for the bench: ``python -m bench.webhook_receiver PORT [ok|hang]``.

A bare asyncio HTTP/1.1 server (keep-alive, Content-Length bodies), in a
process of its own so it never shares an interpreter with what it measures.
``ok`` answers every POST with 204 and notes when each ``webhook-id`` first
arrived (``time.time()``); ``hang`` reads requests and never answers (a dead
endpoint: every attempt times out). ``GET /count`` answers
``{"requests": n, "unique": n}``; ``GET /arrivals`` answers ``{id: seconds}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

arrivals: dict[str, float] = {}
requests = 0


async def _answer(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
    reason = {200: "OK", 204: "No Content", 404: "Not Found"}[status]
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\ncontent-length: {len(body)}\r\n"
        "content-type: application/json\r\n\r\n".encode()
        + body
    )
    await writer.drain()


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hang: bool) -> None:
    global requests
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            if method == "GET":
                payload = {"requests": requests, "unique": len(arrivals)}
                shown = arrivals if path.startswith("/arrivals") else payload
                await _answer(writer, 200, json.dumps(shown).encode())
                continue
            if hang:
                await asyncio.sleep(3600)
                return
            requests += 1
            arrivals.setdefault(headers.get("webhook-id", ""), time.time())
            await _answer(writer, 204, b"")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int, hang: bool) -> None:
    server = await asyncio.start_server(
        lambda r, w: _serve(r, w, hang), "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), len(sys.argv) > 2 and sys.argv[2] == "hang"))
