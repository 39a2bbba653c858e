"""``credits export``: a user's log (or everyone's) as JSON Lines or CSV.

Why streaming: a ledger kept for years is millions of events. A log is read
oldest first in pages of :data:`~credits.limits.EXPORT_PAGE_EVENTS` (the
``after`` cursor of :meth:`~credits.Credits.get_transactions`, which spans the
archive and Redis, so archived history comes out as if it had never moved) and
written as it is read, so memory and every call stay bounded whatever the
size. Every user is found through the per-bucket registries, as reconcile
finds them; ``--all`` shows a progress bar (users done of users registered)
on stderr, so the output stays clean.
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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from credits import limits
from credits.cli.app import (
    DataDirOption,
    SinceOption,
    UntilOption,
    app,
    err_console,
    open_ledger,
    time_range,
)
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


def count_users(client: Credits) -> int:
    """Users registered in all (one SCARD per bucket, pipelined)."""
    pipe = client.redis.pipeline(transaction=False)
    for bucket in range(limits.BUCKET_COUNT):
        pipe.scard(users_key(bucket))
    return sum(int(n) for n in pipe.execute())


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
    every: Annotated[
        bool, typer.Option("--all", help="Every user's log, with a progress bar on stderr")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Export the log: one user's, or every user's, oldest first per user, as JSONL or CSV.

    Archived history (CREDITS_ARCHIVE_URL) is included as if it had never moved.
    """
    if every and user is not None:
        raise typer.BadParameter("give a USER or --all, not both")
    start, end = time_range(since, until)
    with ExitStack() as stack:
        client = stack.enter_context(open_ledger(data_dir))
        out: IO[str] = (
            stack.enter_context(output.open("w", encoding="utf-8", newline=""))
            if output is not None
            else sys.stdout
        )
        writer = _Writer(out, fmt)
        if user is not None:
            for tx in user_transactions(client, user, start, end):
                writer.write(tx)
        else:
            progress = stack.enter_context(
                Progress(
                    TextColumn("export"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("users"), TimeElapsedColumn(), console=err_console,
                    disable=not every,
                )
            )  # fmt: skip
            task = progress.add_task("users", total=count_users(client) if every else None)
            for user_id in every_user(client):
                for tx in user_transactions(client, user_id, start, end):
                    writer.write(tx)
                progress.advance(task)
        out.flush()
    if output is not None:
        sys.stderr.write(f"{writer.count} transactions written to {output}\n")
