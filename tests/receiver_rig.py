"""A real HTTP receiver on loopback for the webhook tests: it answers, fails, hangs, comes back.

``http.server`` in a thread on a free port, no mocks: the delivery code sends
real requests over real sockets. ``mode`` says what the next requests get:
``"ok"`` (204 after recording), ``"fail"`` (500, recorded too, as a receiver
that crashed after reading; ``fail_users`` fails only some users' events), or
``"hang"`` (the request is read and never answered until the receiver is told
to come back or stops: a timeout for the sender). Every request is kept with
its headers and body, so a test verifies the Standard Webhooks signature and
the order of what was received.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

from credits.waiting import wait_until

HANG_LIMIT_S = 30.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded

    def verify(self, secret: str) -> dict[str, Any]:
        """The payload, if the signature checks out (standardwebhooks raises otherwise)."""
        verified: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return verified


def _user_of(body: bytes) -> str:
    try:
        return str(json.loads(body).get("user_id", ""))
    except ValueError:
        return ""


class Receiver:
    """``with Receiver() as r: r.url ...``; ``r.mode = "fail" | "hang" | "ok"``."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.fail_users: set[str] = set()  # events of these users get 500 whatever the mode
        self._requests: list[Received] = []
        self._lock = threading.Lock()
        self._come_back = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                mode = receiver.mode
                if mode == "hang":
                    receiver._come_back.wait(HANG_LIMIT_S)
                    return  # the sender gave up long ago; answer nothing
                failing = mode == "fail" or _user_of(body) in receiver.fail_users
                status = 500 if failing else 204
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver._requests.append(Received(self.path, headers, body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def come_back(self) -> None:
        """Answer normally from now on (and let hanging requests go)."""
        self.mode = "ok"
        self._come_back.set()

    def hang(self) -> None:
        self._come_back.clear()
        self.mode = "hang"

    def stop(self) -> None:
        self._come_back.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    def delivered(self) -> list[Received]:
        """The requests answered 2xx, in the order they arrived."""
        return [r for r in self.requests if r.status < 300]

    def delivered_ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.delivered()]

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[Received]:
        wait_until(
            lambda: len({r.headers["webhook-id"] for r in self.delivered()}) >= count,
            timeout_s=timeout_s,
            what=f"{count} webhook deliveries",
        )
        return self.delivered()
