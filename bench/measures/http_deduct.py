"""``deduct`` over the HTTP API against ``Credits.deduct`` from Python, in the same run.

What the HTTP path costs an app that is not in Python: JSON in and out, the
bearer key check (cached per process), FastAPI's validation and uvicorn, on
top of the very same ledger call. The server is ``uvicorn credits.http:app``
in its own process on loopback (so client and server do not share one GIL),
one keep-alive connection from one blocking ``httpx`` client; the Python side
is one blocking ``Credits`` client. Same Redis, alternating rounds. The
figure is reported, not held to a target: the notes give the per-request
overhead in microseconds (1/HTTP rate - 1/Python rate).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx

from bench import baseline
from bench.context import Context, Measure
from bench.result import Outcome, Target
from bench.timing import alternate, rate
from credits import Credits
from credits.http import keys
from credits.redis_server import free_port
from credits.transport import blocking_executor, drive
from credits.waiting import wait_until

ACTION: Final = "chat_message"
START_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 10.0


@contextlib.contextmanager
def _api_server(redis_url: str) -> Iterator[str]:
    """``uvicorn credits.http:app`` in a child process on a free loopback port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDITS_", "UPSTASH_"))}
    env["CREDITS_REDIS_URL"] = redis_url
    log = Path(tempfile.mkdtemp(prefix="credits-bench-http-")) / "uvicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "credits.http:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning", "--no-access-log"],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answers, timeout_s=START_TIMEOUT_S, what="the HTTP API to start")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(ctx: Context) -> Outcome:
    ops = ctx.sizes.sync_ops
    http_user, python_user = ctx.user("http"), ctx.user("http-py")
    with Credits(ctx.target.url) as ledger, _api_server(ctx.target.url) as base:
        execute = blocking_executor(ledger.redis)
        made = drive(keys.create_key("write", f"bench-{ctx.target.tag}"), execute)
        try:
            for user in (http_user, python_user):
                ledger.initialize_user(user, baseline.GRANT)
            headers = {"Authorization": f"Bearer {made.token}"}
            path = f"/v1/users/{http_user}/deduct"
            body = {"amount": 1, "action": ACTION}
            with httpx.Client(base_url=base, headers=headers, timeout=10) as client:

                def over_http() -> None:
                    for _ in range(ops):
                        client.post(path, json=body).raise_for_status()

                def from_python() -> None:
                    for _ in range(ops):
                        ledger.deduct(python_user, 1, ACTION)

                paired = alternate(
                    ctx.sizes.rounds, lambda: rate(ops, over_http), lambda: rate(ops, from_python)
                )
        finally:
            drive(keys.revoke_key(made.key.id), execute)
    overhead_us = (1 / paired.project - 1 / paired.baseline) * 1e6
    return Outcome(
        project=paired.project,
        baseline=paired.baseline,
        ratio=paired.ratio,
        unit="ops/s",
        notes=[
            f"{paired.rounds} rounds of {ops} deducts per side; one keep-alive connection",
            f"HTTP's own overhead: {overhead_us:.0f} µs per deduct (JSON, key check, "
            "validation, uvicorn; one process, loopback)",
        ],
    )


MEASURE = Measure(
    key="http_deduct",
    title="`deduct` over the HTTP API",
    baseline="`Credits.deduct` from Python, same Redis",
    target=Target(),
    run=run,
)
