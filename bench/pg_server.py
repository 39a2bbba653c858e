"""A PostgreSQL for the archive rows: ``CREDITS_BENCH_PG_DSN``, or a throwaway one.

Why a throwaway: the archive's throughput on PostgreSQL is a figure the table
should always carry, and the machine usually has the server's binaries. It is
started from them in a temporary directory on a free port (as the ``postgres``
user when run as root, which PostgreSQL refuses), used in a schema of this run,
and stopped and deleted at the end. Durable settings are kept (``fsync`` on),
since what is measured is a durable commit per batch.
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
from collections.abc import Iterator
from pathlib import Path

ENV_DSN = "CREDITS_BENCH_PG_DSN"
START_TIMEOUT_S = 60.0


def _binaries() -> tuple[str, str] | None:
    dirs = [str(Path(p).parent) for p in [shutil.which("initdb")] if p]
    dirs += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for directory in dirs:
        initdb, postgres = Path(directory, "initdb"), Path(directory, "postgres")
        if initdb.is_file() and postgres.is_file():
            return str(initdb), str(postgres)
    return None


def _demote() -> None:
    entry = pwd.getpwnam("postgres") if _has_user("postgres") else pwd.getpwnam("nobody")
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def postgres_dsn(dsn: str | None) -> Iterator[str | None]:
    """The DSN given, else one of a server started here, else None (no binaries)."""
    if dsn:
        yield dsn
        return
    binaries = _binaries()
    if binaries is None:
        yield None
        return
    initdb, postgres = binaries
    root = os.geteuid() == 0
    data_dir = Path(tempfile.mkdtemp(prefix="credits-bench-pg-"))
    demote = _demote if root else None
    if root:
        entry = pwd.getpwnam("postgres") if _has_user("postgres") else pwd.getpwnam("nobody")
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    subprocess.run(
        [initdb, "-D", str(data_dir / "data"), "-U", "credits", "-A", "trust", "-E", "UTF8",
         "--no-sync"],
        check=True, capture_output=True, preexec_fn=demote, env=env, timeout=120,
    )  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = subprocess.Popen(
        [postgres, "-D", str(data_dir / "data"), "-p", str(port), "-k", str(data_dir),
         "-c", "listen_addresses=127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        preexec_fn=demote, env=env,
    )  # fmt: skip
    url = f"postgresql://credits@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(url, connect_timeout=2):
                    break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
