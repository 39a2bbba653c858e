"""The PostgreSQL archive (``postgresql://USER@HOST:PORT/DB[?schema=NAME]``, psycopg 3).

Why PostgreSQL: it is what finance teams query, with real types (``timestamptz``,
``jsonb``) and the indexes ``docs/HISTORY.md`` lists. ``schema`` (ours, not
libpq's) puts the tables in a schema of their own, created if missing; every
other query parameter goes to libpq as it is. Connecting and every statement
have deadlines, so a database that hangs is an error, not a stuck worker.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from credits.archive.base import Archive
from credits.errors import InvalidInputError

CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 30_000
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def split_schema(url: str) -> tuple[str, str | None]:
    """The libpq URL without our ``schema`` parameter, and that schema (checked)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    if schema is not None and not _SCHEMA.match(schema):
        raise InvalidInputError(f"schema must be a lower-case SQL name, got {schema!r}")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), schema


class PostgresArchive(Archive):
    kind = "postgresql"
    marker = "%s"
    timestamp_type = "TIMESTAMPTZ"
    json_type = "JSONB"
    bool_type = "BOOLEAN"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.dsn, self.schema = split_schema(url)
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - the `postgres` extra
            raise InvalidInputError(
                "a postgresql:// archive needs psycopg: pip install 'credits[postgres]'"
            ) from exc
        self._psycopg = psycopg

    def _connect(self) -> Any:
        return self._psycopg.connect(
            self.dsn,
            connect_timeout=CONNECT_TIMEOUT_S,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            client_encoding="utf8",  # text comes back as str even from a SQL_ASCII database
            autocommit=False,
        )

    def _schema_sql(self) -> list[str]:
        head = [f"CREATE SCHEMA IF NOT EXISTS {self.schema}"] if self.schema else []
        return head + super()._schema_sql()

    def _table(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name

    def _unavailable(self, exc: BaseException) -> bool:
        errors = self._psycopg
        return isinstance(exc, errors.OperationalError | errors.InterfaceError)

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        return (self._psycopg.Error,)
