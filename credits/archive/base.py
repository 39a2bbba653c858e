"""The archive's tables and queries, written once for PostgreSQL and SQLite.

Why one class with two dialects: the two backends differ in how they connect,
their parameter marker and a few column types; the table layout (documented for
finance teams in ``docs/HISTORY.md``), the idempotent copy and every read are the
same SQL, so they cannot drift apart.

Every event is one row keyed by ``(user_id, ms, seq)`` (its tx id), so copying a
batch again after a crash inserts nothing twice (``ON CONFLICT DO NOTHING``). A
row holds the readable columns finance teams query (type, amount, balance after,
time as a timestamp, metadata as JSON ...) and the raw log fields, so the ledger
reads an archived event back through the very code that reads it from Redis.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from credits import log_format
from credits.errors import ArchiveUnavailableError, InvalidInputError, StoreRefusedError
from credits.history import parse_transaction
from credits.keys import user_keys

Entry = tuple[str, dict[str, str]]
"""An event as ``XRANGE`` gives it: (tx id, raw log fields)."""

EVENTS_TABLE: Final = "credits_events"
CHECKPOINTS_TABLE: Final = "credits_checkpoints"
EVENT_COLUMNS: Final = (
    "user_id", "ms", "seq", "tx_id", "occurred_at", "type", "action", "amount",
    "balance_delta", "held_delta", "balance_after", "held_after", "reservation_id",
    "shortfall", "late", "forfeited", "metadata", "lots", "fields",
)  # fmt: skip
CHECKPOINT_COLUMNS: Final = ("user_id", "ms", "seq", "tx_id", "kind", "events", "state")


def split_id(tx_id: str) -> tuple[int, int]:
    ms, _, seq = tx_id.partition("-")
    return int(ms), int(seq or 0)


def event_row(user_id: str, tx_id: str, fields: dict[str, str]) -> tuple[Any, ...]:
    """The row of one event: readable columns (as the ledger reads them) and the raw fields."""
    tx = parse_transaction(user_keys(user_id), tx_id, fields)
    ms, seq = split_id(tx_id)
    held_after = fields.get(log_format.HELD_AFTER)
    return (
        user_id, ms, seq, tx_id, datetime.fromtimestamp(ms / 1000, tz=UTC), tx.type,
        tx.action, tx.amount, tx.balance_delta, tx.held_delta, tx.balance_after,
        int(held_after) if held_after is not None else None, tx.reservation_id, tx.shortfall,
        tx.late, tx.forfeited, _json(tx.metadata), _json(tx.lots), _json(fields),
    )  # fmt: skip


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


class Archive(ABC):
    """A database holding archived events and checkpoints; one connection, thread-safe.

    Errors: the database unreachable or failing mid-call is
    :class:`~credits.errors.ArchiveUnavailableError` (a
    :class:`~credits.errors.StoreUnavailableError`: repeat later); anything
    else it refuses is :class:`~credits.errors.StoreRefusedError`.
    """

    kind: str = ""
    marker: str = "?"  # the parameter marker of the driver
    timestamp_type: str = "TEXT"
    json_type: str = "TEXT"
    bool_type: str = "BOOLEAN"

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()
        self._conn: Any = None
        self._ready = False

    # ------------------------------------------------------------- the backends' part

    @abstractmethod
    def _connect(self) -> Any:
        """A new DB-API connection (autocommit off)."""

    @abstractmethod
    def _unavailable(self, exc: BaseException) -> bool:
        """The error means the database could not be reached or failed mid-call."""

    @abstractmethod
    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        """The driver's error classes (everything it may raise)."""

    def _schema_sql(self) -> list[str]:
        t, j, b = self.timestamp_type, self.json_type, self.bool_type
        return [
            f"""CREATE TABLE IF NOT EXISTS {self._table(EVENTS_TABLE)} (
                user_id TEXT NOT NULL, ms BIGINT NOT NULL, seq BIGINT NOT NULL,
                tx_id TEXT NOT NULL, occurred_at {t} NOT NULL, type TEXT NOT NULL,
                action TEXT NOT NULL, amount BIGINT NOT NULL, balance_delta BIGINT NOT NULL,
                held_delta BIGINT NOT NULL, balance_after BIGINT NOT NULL, held_after BIGINT,
                reservation_id TEXT, shortfall BIGINT NOT NULL, late {b} NOT NULL,
                forfeited BIGINT NOT NULL, metadata {j} NOT NULL, lots {j} NOT NULL,
                fields {j} NOT NULL, PRIMARY KEY (user_id, ms, seq))""",
            f"CREATE INDEX IF NOT EXISTS credits_events_occurred_at "
            f"ON {self._table(EVENTS_TABLE)} (occurred_at)",
            f"CREATE INDEX IF NOT EXISTS credits_events_reservation "
            f"ON {self._table(EVENTS_TABLE)} (reservation_id)",
            f"""CREATE TABLE IF NOT EXISTS {self._table(CHECKPOINTS_TABLE)} (
                user_id TEXT NOT NULL, ms BIGINT NOT NULL, seq BIGINT NOT NULL,
                tx_id TEXT NOT NULL, kind TEXT NOT NULL, events BIGINT NOT NULL,
                state {j} NOT NULL, PRIMARY KEY (user_id, ms, seq))""",
        ]

    def _table(self, name: str) -> str:
        return name

    def _adapt(self, sql: str) -> str:
        return sql if self.marker == "?" else sql.replace("?", self.marker)

    def _decode_json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value

    # ------------------------------------------------------------- connection

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor in a transaction: committed on success, rolled back (and the
        connection dropped when it failed) on error, every driver error mapped."""
        caught: tuple[type[BaseException], ...] = (*self._driver_errors(), OSError)
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                if not self._ready:
                    cur = self._conn.cursor()
                    for statement in self._schema_sql():
                        cur.execute(statement)
                    self._conn.commit()
                    self._ready = True
                cur = self._conn.cursor()
                yield cur
                self._conn.commit()
            except caught as exc:
                self._drop()
                if isinstance(exc, OSError) or self._unavailable(exc):
                    raise ArchiveUnavailableError(
                        f"the {self.kind} archive is unavailable: {type(exc).__name__}: {exc}"
                    ) from exc
                raise StoreRefusedError(
                    f"the {self.kind} archive refused: {type(exc).__name__}: {exc}"
                ) from exc
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rollback()
        except self._driver_errors():
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except self._driver_errors():
                pass

    def close(self) -> None:
        with self._lock:
            self._drop()

    def call(self, method: str, args: Sequence[Any]) -> Any:
        """What an :class:`~credits.protocol.ArchiveCall` runs."""
        if method not in ARCHIVE_METHODS:
            raise InvalidInputError(f"no archive method {method!r}")
        return getattr(self, method)(*args)

    # ------------------------------------------------------------- writes

    def write(
        self,
        user_id: str,
        entries: Sequence[Entry],
        checkpoints: Sequence[tuple[str, str, int, str]] = (),
    ) -> int:
        """Copy events (and checkpoints ``(tx id, kind, events, state JSON)``) in one
        transaction, idempotently; returns how many of ``entries`` the archive now holds.

        The count is read back inside the same transaction: the archiver trims
        Redis only when it equals ``len(entries)``, so an event the archive
        does not hold, committed, never leaves Redis.
        """
        events_sql = self._adapt(
            f"INSERT INTO {self._table(EVENTS_TABLE)} ({', '.join(EVENT_COLUMNS)}) VALUES "
            f"({', '.join('?' for _ in EVENT_COLUMNS)}) ON CONFLICT DO NOTHING"
        )
        cps_sql = self._adapt(
            f"INSERT INTO {self._table(CHECKPOINTS_TABLE)} ({', '.join(CHECKPOINT_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in CHECKPOINT_COLUMNS)}) ON CONFLICT DO NOTHING"
        )
        rows = [self._event_row(user_id, tx_id, fields) for tx_id, fields in entries]
        with self._cursor() as cur:
            if rows:
                cur.executemany(events_sql, rows)
            if checkpoints:
                cur.executemany(
                    cps_sql,
                    [(user_id, *split_id(tx_id), tx_id, kind, events, state)
                     for tx_id, kind, events, state in checkpoints],
                )  # fmt: skip
            if not entries:
                return 0
            return self._count(cur, user_id, entries[0][0], entries[-1][0])

    def _event_row(self, user_id: str, tx_id: str, fields: dict[str, str]) -> tuple[Any, ...]:
        row = event_row(user_id, tx_id, fields)
        if self.timestamp_type == "TEXT":
            row = (*row[:4], row[4].isoformat(timespec="milliseconds"), *row[5:])
        return row

    def _count(self, cur: Any, user_id: str, first: str, last: str) -> int:
        cur.execute(
            self._adapt(
                f"SELECT count(*) FROM {self._table(EVENTS_TABLE)} WHERE user_id = ? "
                "AND (ms, seq) >= (?, ?) AND (ms, seq) <= (?, ?)"
            ),
            (user_id, *split_id(first), *split_id(last)),
        )
        return int(cur.fetchone()[0])

    # ------------------------------------------------------------- reads

    def events(
        self,
        user_id: str,
        after: str = "",
        upto: str = "",
        limit: int = 1000,
        start_ms: int | None = None,
        end_ms: int | None = None,
        newest_first: bool = False,
        before: str = "",
    ) -> list[Entry]:
        """Archived events of a user in (after, upto] (and before ``before``, and within
        [start_ms, end_ms]), oldest first or newest first, at most ``limit``."""
        where: list[str] = ["user_id = ?"]
        params: list[Any] = [user_id]
        if after:
            where.append("(ms, seq) > (?, ?)")
            params += split_id(after)
        if upto:
            where.append("(ms, seq) <= (?, ?)")
            params += split_id(upto)
        if before:
            where.append("(ms, seq) < (?, ?)")
            params += split_id(before)
        if start_ms is not None:
            where.append("ms >= ?")
            params.append(start_ms)
        if end_ms is not None:
            where.append("ms <= ?")
            params.append(end_ms)
        order = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT tx_id, fields FROM {self._table(EVENTS_TABLE)} WHERE "
            f"{' AND '.join(where)} ORDER BY ms {order}, seq {order} LIMIT ?"
        )
        with self._cursor() as cur:
            cur.execute(self._adapt(sql), (*params, int(limit)))
            return [(str(tx_id), self._decode_json(fields)) for tx_id, fields in cur.fetchall()]

    def last_at_or_before(self, user_id: str, at_ms: int, upto: str = "") -> Entry | None:
        """The user's last archived event stamped at or before ``at_ms`` (and at or before
        ``upto``); one index probe."""
        found = self.events(user_id, upto=upto, end_ms=at_ms, limit=1, newest_first=True)
        return found[0] if found else None

    def held_through(self, user_id: str, tx_id: str) -> int:
        """The sum of held deltas up to ``tx_id``: held after an event written before
        the held field existed."""
        with self._cursor() as cur:
            cur.execute(
                self._adapt(
                    f"SELECT coalesce(sum(held_delta), 0) FROM {self._table(EVENTS_TABLE)} "
                    "WHERE user_id = ? AND (ms, seq) <= (?, ?)"
                ),
                (user_id, *split_id(tx_id)),
            )
            return int(cur.fetchone()[0])

    def checkpoint_at_or_before(
        self, user_id: str, tx_id: str
    ) -> tuple[str, str, int, dict[str, Any]] | None:
        with self._cursor() as cur:
            cur.execute(
                self._adapt(
                    f"SELECT tx_id, kind, events, state FROM {self._table(CHECKPOINTS_TABLE)} "
                    "WHERE user_id = ? AND (ms, seq) <= (?, ?) ORDER BY ms DESC, seq DESC LIMIT 1"
                ),
                (user_id, *split_id(tx_id)),
            )
            row = cur.fetchone()
        if row is None:
            return None
        return str(row[0]), str(row[1]), int(row[2]), self._decode_json(row[3])

    def event_count(self, user_id: str | None = None) -> int:
        """Events archived (of one user, or in all)."""
        sql = f"SELECT count(*) FROM {self._table(EVENTS_TABLE)}"
        params: tuple[Any, ...] = ()
        if user_id is not None:
            sql, params = sql + " WHERE user_id = ?", (user_id,)
        with self._cursor() as cur:
            cur.execute(self._adapt(sql), params)
            return int(cur.fetchone()[0])

    def ping(self) -> bool:
        with self._cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
        return True


ARCHIVE_METHODS: Final = frozenset(
    {"write", "events", "last_at_or_before", "held_through", "checkpoint_at_or_before",
     "event_count", "ping"}
)  # fmt: skip


def open_archive(url: str) -> Archive:
    """The archive ``url`` names: ``postgresql://...`` or ``sqlite:///PATH``.

    Nothing connects here: the first call does (and makes the tables if they are
    missing), so a client starts while its archive is down.
    """
    if not isinstance(url, str) or not url:
        raise InvalidInputError("an archive URL must be a non-empty str")
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres"):
        from credits.archive.postgres import PostgresArchive

        return PostgresArchive(url)
    if scheme == "sqlite":
        from credits.archive.sqlite import SqliteArchive

        return SqliteArchive(url)
    raise InvalidInputError(
        f"unsupported archive URL scheme {scheme!r}: use postgresql://... or sqlite:///PATH"
    )
