"""The HTTP API on real loopback HTTP: uvicorn in a thread, on a free port, for one test module.

No ASGI test transport: requests go through uvicorn and a socket, as an app's
do, so headers, body limits, status codes and the event loop are the real ones.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

import uvicorn
from starlette.types import ASGIApp

from credits import Credits
from credits.http import keys
from credits.http.app import create_app
from credits.redis_server import free_port
from credits.transport import blocking_executor, drive
from credits.waiting import wait_until

START_TIMEOUT_S: Final = 20.0
STOP_TIMEOUT_S: Final = 10.0
HOST: Final = "127.0.0.1"


@dataclass(frozen=True)
class Served:
    base_url: str


@contextmanager
def serve(redis_url: str) -> Iterator[Served]:
    """``create_app(redis_url)`` served by uvicorn on 127.0.0.1 until the block ends."""
    with serve_app(create_app(redis_url)) as served:
        yield served


@contextmanager
def serve_app(app: ASGIApp) -> Iterator[Served]:
    """Any ASGI app (a webhook receiver, say) served by uvicorn on 127.0.0.1 until the end."""
    port = free_port()
    config = uvicorn.Config(app, host=HOST, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout_s=START_TIMEOUT_S, what="uvicorn to start")
        yield Served(base_url=f"http://{HOST}:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=STOP_TIMEOUT_S)


def make_key(client: Credits, scope: str, name: str = "test") -> str:
    """A new API key's token (stored hashed in the test Redis)."""
    made = drive(keys.create_key(scope, name), blocking_executor(client.redis))
    return made.token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def scoped_tokens(client: Credits, label: str) -> Iterator[dict[str, str]]:
    """One API key per scope, named ``<label>-<scope>``, revoked when the block ends."""
    made = {scope: make_key(client, scope, f"{label}-{scope}") for scope in keys.SCOPES}
    yield made
    execute = blocking_executor(client.redis)
    for token in made.values():
        key_id = keys.key_id_of(token)
        assert key_id is not None
        drive(keys.revoke_key(key_id), execute)
