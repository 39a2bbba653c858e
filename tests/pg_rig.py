"""Test rig: a real PostgreSQL for the archive tests, never one whose data we did not write.

Where it comes from, in order:

1. ``CREDITS_TEST_POSTGRES_URL``: someone else's server. The suite works in a
   schema of its own (``credits_test_<random>``) and drops only that schema.
2. The system's binaries (``initdb`` and ``postgres`` on PATH or in
   ``/usr/lib/postgresql/*/bin``): a throwaway cluster in a temporary
   directory on a free port, with ``fsync`` off (it is thrown away), stopped
   and deleted at the end. As root, it runs as the ``postgres`` (or
   ``nobody``) user, because PostgreSQL refuses to run as root.
3. Neither: the PostgreSQL tests skip, saying why (``.ci/run`` installs the
   binaries where apt can).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_POSTGRES_URL = "CREDITS_TEST_POSTGRES_URL"
START_TIMEOUT_S = 60.0
UNPRIVILEGED_USERS = ("postgres", "nobody")


@dataclass
class PostgresTarget:
    """A PostgreSQL the suite may use: ``url`` is an archive URL with our own schema."""

    url: str
    admin_dsn: str  # libpq DSN of the server, without the schema parameter
    schema: str
    process: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None
    owner: tuple[int, int] | None = None
    argv: list[str] | None = None

    def archive_url(self, schema: str | None = None) -> str:
        """The archive URL of a schema (a fresh one per test keeps tests apart)."""
        return f"{self.admin_dsn}?schema={schema or self.schema}"

    def drop_schemas(self, schemas: list[str]) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=5) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)  # "fast" shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def shut_down(self) -> None:
        """Stop the server (a fast shutdown), keeping its data: the archive is down."""
        if self.process is None:
            raise RuntimeError("only a server the suite started can be stopped")
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)

    def start_again(self) -> None:
        """Start the stopped server again, on the same port and data."""
        if self.argv is None or self.data_dir is None:
            raise RuntimeError("only a server the suite started can be started again")
        self.process = _launch(self.argv, self.data_dir, self.owner)
        _wait_ready(self.admin_dsn, self.process, self.data_dir / "postgres.log")

    def pause(self) -> None:
        """Make the server unreachable (SIGSTOP), as a hung database would be."""
        if self.process is None:
            raise RuntimeError("only a server the suite started can be paused")
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)


def new_schema() -> str:
    return f"credits_test_{uuid.uuid4().hex[:12]}"


def find_binaries() -> tuple[str, str] | None:
    """``initdb`` and ``postgres`` of one installation, or None."""
    for directory in [
        *(str(Path(p).parent) for p in [shutil.which("initdb")] if p),
        *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True),
    ]:
        initdb, postgres = Path(directory, "initdb"), Path(directory, "postgres")
        if initdb.is_file() and postgres.is_file():
            return str(initdb), str(postgres)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _owner() -> tuple[int, int] | None:
    """Who the server runs as: ourselves, or (as root) an unprivileged user."""
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_USERS:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root with no unprivileged user to run PostgreSQL as")


def _as(owner: tuple[int, int] | None) -> Callable[[], None] | None:
    if owner is None:
        return None
    uid, gid = owner

    def demote() -> None:
        os.setgid(gid)
        os.setuid(uid)

    return demote


def start_throwaway(binaries: tuple[str, str]) -> PostgresTarget:
    initdb, postgres = binaries
    owner = _owner()
    data_dir = Path(tempfile.mkdtemp(prefix="credits-pg-"))
    if owner is not None:
        os.chown(data_dir, *owner)
    pgdata, sockets = data_dir / "data", data_dir
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    subprocess.run(
        [initdb, "-D", str(pgdata), "-U", "credits", "-A", "trust", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, preexec_fn=_as(owner), env=env, timeout=120,
    )  # fmt: skip
    port = _free_port()
    argv = [postgres, "-D", str(pgdata), "-p", str(port), "-k", str(sockets),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off",
            "-c", "synchronous_commit=off"]  # fmt: skip
    process = _launch(argv, data_dir, owner)
    dsn = f"postgresql://credits@127.0.0.1:{port}/postgres"
    target = PostgresTarget(
        url="", admin_dsn=dsn, schema=new_schema(), process=process, data_dir=data_dir,
        owner=owner, argv=argv,
    )  # fmt: skip
    target.url = target.archive_url()
    _wait_ready(dsn, process, data_dir / "postgres.log")
    return target


def _launch(
    argv: list[str], data_dir: Path, owner: tuple[int, int] | None
) -> subprocess.Popen[bytes]:
    log_path = data_dir / "postgres.log"
    log = log_path.open("ab")
    if owner is not None:
        os.chown(log_path, *owner)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    return subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        preexec_fn=_as(owner), env=env,
    )  # fmt: skip


def _wait_ready(dsn: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with psycopg.connect(dsn, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def start_postgres_target() -> PostgresTarget | str:
    """A target, or why there is none (the tests skip with it)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[dev]')"
    url = os.environ.get(ENV_POSTGRES_URL, "").strip()
    if url:
        schema = new_schema()
        return PostgresTarget(url=f"{url}?schema={schema}", admin_dsn=url, schema=schema)
    binaries = find_binaries()
    if binaries is None:
        return (
            f"no PostgreSQL: set {ENV_POSTGRES_URL}, or install the server's binaries "
            "(apt-get install postgresql) so the suite can start its own"
        )
    return start_throwaway(binaries)


def rows(target: PostgresTarget, schema: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run a query in ``schema`` (the finance team's view of the archive)."""
    import psycopg

    with psycopg.connect(target.admin_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"SET search_path TO {schema}")
        return list(conn.execute(sql, params).fetchall())
