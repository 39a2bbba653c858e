"""Child processes for ``credits up`` and ``credits demo``: a Celery worker and Flower.

Each child runs in its own session (process group): Ctrl-C in the terminal
reaches only the supervisor, which then stops the children in order, and a
stop reaches a worker's pool processes too. Output goes to log files; waiting
is polling with a deadline, never a fixed sleep.

``credits up`` records what it runs in ``<data dir>/credits-up.json`` so that
``credits demo``, ``url``, ``balance``, ``history`` and the others find its Redis.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final, Self

from credits.redis_server import pid_is_alive
from credits.waiting import wait_until

logger = logging.getLogger(__name__)

UP_STATE_FILE_NAME: Final = "credits-up.json"
READY_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0  # a worker's warm shutdown waits for running tasks (<= 30 s)
POLL_INTERVAL_S: Final = 0.05
LOG_TAIL_CHARS: Final = 3000
FLOWER_PROBE_TIMEOUT_S: Final = 1.0


class ChildExitedError(RuntimeError):
    """A child process ended while it was expected to run."""


class Child:
    """One child process in its own process group, logging to ``log_path``."""

    def __init__(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._env = dict(env)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} has not started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def check_running(self) -> None:
        """Raises ChildExitedError (with the log tail) if the process has ended."""
        if self._proc is not None and self._proc.poll() is not None:
            raise ChildExitedError(
                f"{self.name} exited with status {self._proc.returncode}; "
                f"end of {self.log_path}:\n{self.log_tail()}"
            )

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the process group, wait, then SIGKILL whatever is left of it."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM for %g s; killing it", self.name, timeout_s)
        self._signal_group(signal.SIGKILL)  # stragglers, e.g. pool processes
        self._proc.wait()

    def _signal_group(self, signum: signal.Signals) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signum)


# What points a process at some other Redis: dropped when we run our own server.
_REDIS_ENV: Final = (
    "CREDITS_REDIS_URL", "CREDITS_REDIS_TOKEN", "CREDITS_REDIS_CLUSTER",
    "UPSTASH_REDIS_URL", "UPSTASH_REDIS_TOKEN", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
)  # fmt: skip


def child_env(redis_url: str | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a worker or Flower, from ``base`` (default: this process's).

    With ``redis_url`` (a server we started), every Redis setting of ``base`` is
    replaced by it; with None, the configured ones (``CREDITS_REDIS_URL``, tokens,
    ``CELERY_BROKER_URL`` ...) pass through untouched.
    """
    env = dict(os.environ if base is None else base)
    if redis_url is not None:
        for name in _REDIS_ENV:
            env.pop(name, None)
        env["CREDITS_REDIS_URL"] = redis_url
    return env


def worker_argv(
    *,
    hostname: str,
    concurrency: int,
    queues: Sequence[str] = (),
    beat_schedule: Path | None = None,
) -> list[str]:
    argv = [
        sys.executable, "-m", "celery", "-A", "credits.tasks", "worker",
        "--loglevel", "INFO", "--hostname", hostname, "--concurrency", str(concurrency),
    ]  # fmt: skip
    if queues:
        argv += ["--queues", ",".join(queues)]
    if beat_schedule is not None:
        argv += ["--beat", "--schedule", str(beat_schedule)]
    return argv


def flower_argv(*, address: str, port: int) -> list[str]:
    return [sys.executable, "-m", "credits.tasks.flower", f"--address={address}", f"--port={port}"]


def api_argv(*, host: str, port: int) -> list[str]:
    """``credits serve`` as a child (its Redis comes from the child's CREDITS_REDIS_URL)."""
    return [
        sys.executable, "-c", "from credits.cli import main; main()",
        "serve", "--host", host, "--port", str(port),
    ]  # fmt: skip


def wait_worker_ready(worker: Child, hostname: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until the worker logs ``<hostname> ready.``; raises ChildExitedError if it dies."""

    def ready() -> bool:
        worker.check_running()
        return _log_has(worker.log_path, f"{hostname} ready.")

    wait_until(ready, timeout_s=timeout_s, what=f"{worker.name} to be ready")


def _log_has(path: Path, text: str) -> bool:
    try:
        return text in path.read_text(errors="replace")
    except OSError:
        return False


def wait_http_ok(child: Child, url: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until ``url`` answers 200; raises ChildExitedError if ``child`` dies first."""
    import urllib.error
    import urllib.request

    def ok() -> bool:
        child.check_running()
        try:
            with urllib.request.urlopen(url, timeout=FLOWER_PROBE_TIMEOUT_S) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    wait_until(ok, timeout_s=timeout_s, what=f"{child.name} at {url}")


# --------------------------------------------------------------------------- up state


@dataclass(frozen=True)
class UpState:
    """What a running ``credits up`` serves, recorded in its data directory."""

    pid: int
    redis_url: str
    flower_url: str | None
    api_url: str | None = None

    @staticmethod
    def path(data_dir: Path) -> Path:
        return data_dir / UP_STATE_FILE_NAME

    def write(self, data_dir: Path) -> None:
        """Atomically, readable by this user only (the URL may hold a password)."""
        path = self.path(data_dir)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def read_live(cls, data_dir: Path) -> UpState | None:
        """The recorded state if that ``credits up`` is still running, else None."""
        try:
            raw = json.loads(cls.path(data_dir).read_text())
            state = cls(pid=int(raw["pid"]), redis_url=str(raw["redis_url"]),
                        flower_url=raw.get("flower_url"), api_url=raw.get("api_url"))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return state if pid_is_alive(state.pid) else None

    @classmethod
    def remove(cls, data_dir: Path) -> None:
        cls.path(data_dir).unlink(missing_ok=True)
