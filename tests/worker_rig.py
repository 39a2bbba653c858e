"""Real Celery worker subprocesses for the task, CLI and example tests.

No mocked Celery: each worker is ``celery -A credits.tasks worker`` in its own
process group (so a test can SIGKILL the whole worker, pool included), pointed
at the test Redis as broker, result backend and ledger store through its
environment. Each test gets its own queue name, so workers of different tests
never take each other's tasks on a shared Redis.

Waiting is polling with a deadline (``credits.waiting.wait_until``), never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from celery import Celery

from credits.tasks import app
from credits.waiting import wait_until

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 15.0
POLL_INTERVAL_S: Final = 0.02
LOG_TAIL_CHARS: Final = 4000

# Variables a test must not inherit from the developer's shell.
_OWN_PREFIXES: Final = ("CREDITS_", "CELERY_", "UPSTASH_", "FLOWER_")


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any credits/Celery/Flower settings, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_OWN_PREFIXES)}
    env.update(overrides)
    return env


def configure_app(redis_url: str) -> Celery:
    """Point this (test) process's Celery app at the test Redis, to send tasks and read results."""
    app.conf.update(broker_url=redis_url, result_backend=redis_url)
    return app


def new_queue() -> str:
    return f"credits-test-{uuid.uuid4().hex[:12]}"


class Worker:
    """One ``celery worker`` subprocess consuming ``queue``; its log goes to ``log_path``."""

    def __init__(
        self,
        redis_url: str,
        log_dir: Path,
        *,
        queue: str,
        store_url: str | None = None,
        pool: str = "prefork",
        concurrency: int = 2,
        visibility_timeout_s: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.queue = queue
        self.log_path = log_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
        self.nodename = f"{queue}-{uuid.uuid4().hex[:6]}@localhost"
        overrides = {
            "CREDITS_REDIS_URL": store_url or redis_url,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_RESULT_BACKEND": redis_url,
        }
        if visibility_timeout_s is not None:
            overrides["CREDITS_BROKER_VISIBILITY_TIMEOUT_S"] = str(visibility_timeout_s)
        overrides.update(env or {})
        self._env = clean_env(**overrides)
        self._argv = [
            sys.executable, "-m", "celery", "-A", "credits.tasks", "worker",
            f"--pool={pool}", f"--concurrency={concurrency}",
            "--queues", queue, "--hostname", self.nodename,
            "--without-gossip", "--without-mingle", "--loglevel", "INFO",
        ]  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_ready: bool = True) -> Worker:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._argv,
                cwd=REPO_ROOT,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg reaches the pool
            )
        if wait_ready:
            wait_until(self._ready, timeout_s=READY_TIMEOUT_S, what=f"worker {self.nodename}")
        return self

    def _ready(self) -> bool:
        if not self.alive:
            raise RuntimeError(f"worker exited with {self.returncode}:\n{self.log_tail()}")
        return f"{self.nodename} ready." in self.log_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("worker not started")
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool), as a crash or OOM would."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL of the group if it lingers."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGTERM)
                self._proc.wait(timeout=STOP_TIMEOUT_S)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                self.kill()
        # Pool children left behind by a crash of the main process.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return ""


class Workers:
    """Starts workers for one test and stops every one of them at the end."""

    def __init__(self, redis_url: str, log_dir: Path) -> None:
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.queue = new_queue()
        self._started: list[Worker] = []

    def start(self, **options: Any) -> Worker:
        """A worker on this test's queue (``options`` as for :class:`Worker`)."""
        options.setdefault("queue", self.queue)
        worker = Worker(self.redis_url, self.log_dir, **options)
        self._started.append(worker)
        return worker.start()

    def stop_all(self) -> None:
        for worker in self._started:
            worker.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {w.nodename}\n{w.log_tail()}" for w in self._started)


# Sends the settles from a process of its own, so this test never reconfigures the
# Celery app that the other task tests share in this process.
PRODUCER = """
import json, sys
from credits.tasks import settle_reservation
queue, actual = sys.argv[1], int(sys.argv[2])
for rid in json.load(sys.stdin):
    settle_reservation.apply_async((rid, actual), queue=queue)
"""


class Supervisor:
    """Keeps one worker running on the queue, as compose's ``restart:`` or systemd would.

    Needed because kombu sometimes kills the worker when its broker connection
    drops: closing the dead channel, it restores unacked messages through a
    connection that is already gone and raises ``AttributeError: 'NoneType'
    object has no attribute 'hostname'``, which Celery reports as an
    "Unrecoverable error" and exits (celery 5.7 / kombu 5.7; the same race as
    celery/kombu#582). Nothing is lost: the messages stay queued, unacked or in
    the outbox, and the next worker takes them. docs/RELIABILITY.md has the details.
    """

    def __init__(self, workers: Workers, **options: Any) -> None:
        self._workers = workers
        self._options = {"concurrency": 2, **options}  # as for Worker
        self.worker = self._start()
        self.crashes: list[str] = []

    def _start(self) -> Worker:
        return self._workers.start(**self._options)

    def check(self) -> None:
        if self.worker.alive:
            return
        log = self.worker.log_path.read_text(errors="replace")
        self.crashes.append(log[log.find("CRITICAL") :][:300])
        self.worker = self._start()


DELIVERY_TICK_S: Final = 0.2
DELIVERY_TASK: Final = "credits.tasks.deliver_events"


class DeliveryBeat:
    """Sends the webhook dispatcher's tick to ``queue`` every DELIVERY_TICK_S until
    stopped: what beat does, faster, for the tests that deliver through real workers.

    Its Celery app is never the current one, so ``AsyncResult(id)`` elsewhere in the
    session keeps resolving through the credits app and its result backend.
    """

    def __init__(self, url: str, queue: str) -> None:
        self._app = Celery("delivery-beat", broker=url, set_as_current=False)
        self._queue = queue
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(DELIVERY_TICK_S):
            self._app.send_task(DELIVERY_TASK, queue=self._queue, expires=5)

    def __enter__(self) -> DeliveryBeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._app.close()
