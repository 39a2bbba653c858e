"""The embedded archive: one SQLite file (``sqlite:///PATH``; ``sqlite:////abs/path``).

Why SQLite as the default: it needs no server, so a single-machine ledger (``credits
up``) can archive with nothing else installed. The file is in WAL mode with
``synchronous=FULL``: a commit the archiver saw is on disk before it trims Redis.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from credits.archive.base import Archive
from credits.errors import InvalidInputError

BUSY_TIMEOUT_S = 5.0


def sqlite_path(url: str) -> Path:
    """``sqlite:///relative/file.db`` or ``sqlite:////absolute/file.db`` → the path."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise InvalidInputError(f"a sqlite archive URL has no host: {url!r}")
    path = unquote(parts.path)
    if path.startswith("/"):
        path = path[1:]  # sqlite:///x.db is the relative x.db, sqlite:////x.db the absolute
    if not path:
        raise InvalidInputError(f"a sqlite archive URL needs a file: {url!r}")
    return Path(path)


class SqliteArchive(Archive):
    kind = "sqlite"
    marker = "?"
    timestamp_type = "TEXT"  # ISO 8601 UTC with milliseconds: sorts as it reads
    json_type = "TEXT"
    bool_type = "INTEGER"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = sqlite_path(url)

    def _connect(self) -> Any:
        if self.path.parent != Path():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level="DEFERRED"
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _unavailable(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError)

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)
