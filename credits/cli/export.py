"""``credits export``: a user's log (or everyone's) as JSON Lines or CSV.

Why streaming: a log is never trimmed, so an export of a busy user or of the
whole ledger can be millions of events. It is read oldest first in pages of
:data:`~credits.limits.EXPORT_PAGE_EVENTS` (one bounded ``XRANGE`` each, the
``after`` cursor of :meth:`~credits.Credits.get_transactions`) and written as
it is read, so memory and every Redis call stay bounded whatever the size.
Every user is found through the per-bucket registries, as reconcile finds them.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any, Final

import typer

from credits import limits
from credits.cli.app import DataDirOption, SinceOption, UntilOption, app, open_ledger, time_range
from credits.client import Credits
from credits.keys import unescape_user_id, users_key
from credits.models import Transaction

START_CURSOR: Final = "0-0"
CSV_COLUMNS: Final = (
    "user_id", "tx_id", "timestamp", "type", "action", "amount", "balance_delta",
    "held_delta", "balance_after", "reservation_id", "shortfall", "late", "metadata",
)  # fmt: skip


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


def user_transactions(
    client: Credits, user_id: str, start: int | None, end: int | None
) -> Iterator[Transaction]:
    """Every transaction of ``user_id`` in [start, end], oldest first, a bounded page at a time."""
    cursor = START_CURSOR
    while True:
        page = client.get_transactions(
            user_id,
            limit=limits.EXPORT_PAGE_EVENTS,
            start_time=start,
            end_time=end,
            after=cursor,
        )
        yield from reversed(page)  # a page after a cursor is listed newest first
        if len(page) < limits.EXPORT_PAGE_EVENTS:
            return
        cursor = page[0].tx_id


def every_user(client: Credits) -> Iterator[str]:
    """Every registered user id, bucket by bucket (SSCAN, bounded replies)."""
    for bucket in range(limits.BUCKET_COUNT):
        for escaped in client.redis.sscan_iter(users_key(bucket), count=limits.EXPORT_SCAN_USERS):
            yield unescape_user_id(str(escaped))


def _csv_row(tx: Transaction) -> dict[str, Any]:
    row = tx.model_dump()
    row["metadata"] = json.dumps(tx.metadata, ensure_ascii=False, sort_keys=True)
    row["reservation_id"] = tx.reservation_id or ""
    row["late"] = "true" if tx.late else "false"
    return {column: row[column] for column in CSV_COLUMNS}


class _Writer:
    """Writes transactions in one format to one stream."""

    def __init__(self, out: IO[str], fmt: ExportFormat) -> None:
        self._out = out
        self._fmt = fmt
        self._csv: csv.DictWriter[str] | None = None
        if fmt is ExportFormat.csv:
            self._csv = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
            self._csv.writeheader()
        self.count = 0

    def write(self, tx: Transaction) -> None:
        if self._csv is not None:
            self._csv.writerow(_csv_row(tx))
        else:
            self._out.write(json.dumps(tx.model_dump(), ensure_ascii=False) + "\n")
        self.count += 1


@app.command()
def export(
    user: Annotated[
        str | None, typer.Argument(help="One user's log [default: every user's]")
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="jsonl (one JSON object a line) or csv")
    ] = ExportFormat.jsonl,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here [default: stdout]")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Export the log: one user's, or every user's, oldest first per user, as JSONL or CSV."""
    start, end = time_range(since, until)
    with ExitStack() as stack:
        client = stack.enter_context(open_ledger(data_dir))
        out: IO[str] = (
            stack.enter_context(output.open("w", encoding="utf-8", newline=""))
            if output is not None
            else sys.stdout
        )
        writer = _Writer(out, fmt)
        users = [user] if user is not None else every_user(client)
        for user_id in users:
            for tx in user_transactions(client, user_id, start, end):
                writer.write(tx)
        out.flush()
    if output is not None:
        sys.stderr.write(f"{writer.count} transactions written to {output}\n")
