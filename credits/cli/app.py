"""The Typer app of ``credits`` and what every command shares.

Why one module: each command module (``up``, ``views``, ``ops``, ``plans``,
``webhooks``, ``export``, ``keys``, ``serve``) registers on :data:`app` and uses
the same few helpers, so every command finds its Redis the same way, fails the same way and prints
JSON the same way.

Output rules, for every command:

* User data (ids, actions, metadata, reasons) is never parsed as Rich markup:
  the consoles have markup off, and styled output is built from
  :class:`rich.text.Text` parts, so an action named ``refund [/]`` prints as
  itself instead of crashing or vanishing.
* Ids are never cut: text output is one record per block, soft-wrapped by the
  terminal, not a table whose cells end in "…" at 80 columns.
* ``--json`` prints exactly one JSON document on stdout (the models'
  ``model_dump()``), for scripts.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console
from rich.text import Text

from credits.cli.processes import UpState
from credits.client import Credits
from credits.errors import CreditsError, StoreUnavailableError
from credits.redis_server import running_embedded_url
from credits.settings import CreditsSettings

app = typer.Typer(
    name="credits",
    help="A credits ledger for metered AI apps, on Redis, with Celery workers.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
# Markup off: nothing a user wrote is ever interpreted; styles come from Text parts.
console = Console(markup=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)

EXIT_INVALID: Final = 1
EXIT_NO_REDIS: Final = 2
EXIT_UNAVAILABLE: Final = 3

DataDirOption = Annotated[
    Path | None,
    typer.Option(help="Data dir of the embedded Redis [default: CREDITS_DATA_DIR or .credits]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text")]

Part = str | tuple[str, str]
"""A piece of a printed line: plain text, or (text, Rich style)."""


def data_dir(option: Path | None) -> Path:
    return (option or CreditsSettings().data_dir).resolve()


def line(*parts: Part) -> Text:
    """A line from plain and styled parts; nothing in it is parsed as markup."""
    return Text.assemble(*parts)


def say(*parts: Part) -> None:
    console.print(line(*parts))


def warn(*parts: Part) -> None:
    err_console.print(line(*parts))


def fail(*parts: Part, code: int = EXIT_INVALID) -> typer.Exit:
    """Print an error on stderr; ``raise fail(...)`` ends the command with ``code``."""
    warn(*parts)
    return typer.Exit(code)


def print_json(value: Any) -> None:
    """One JSON document on stdout, unescaped Unicode, for ``--json``."""
    sys.stdout.write(json.dumps(value, ensure_ascii=False, sort_keys=False) + "\n")
    sys.stdout.flush()


def redis_url_of(directory: Path) -> str | None:
    """Where the ledger is when ``CREDITS_REDIS_URL`` is not set, or None.

    A running ``credits up`` for ``directory`` first, then the embedded server
    recorded there (one ``Credits.embedded(directory)`` started and left running).
    """
    state = UpState.read_live(directory)
    if state is not None:
        return state.redis_url
    return running_embedded_url(directory)


@contextmanager
def open_ledger(data_dir_option: Path | None) -> Iterator[Credits]:
    """A client of ``CREDITS_REDIS_URL`` (token, cluster and all), else of the local server.

    Exits 2, saying how to get a Redis, when there is none; turns a credits
    error into its name and message on stderr and exit 1 (3 when the store was
    unreachable: the outcome of a write is then unknown).
    """
    configured = CreditsSettings().redis_url is not None
    url = None
    if not configured:
        directory = data_dir(data_dir_option)
        url = redis_url_of(directory)
        if url is None:
            raise fail(
                ("No Redis: ", "red"),
                "set CREDITS_REDIS_URL, or start one with `credits up` "
                f"(or Credits.embedded() in {directory}).",
                code=EXIT_NO_REDIS,
            )
    try:
        with Credits.from_env() if configured else Credits(url) as client:
            yield client
    except CreditsError as exc:
        code = EXIT_UNAVAILABLE if isinstance(exc, StoreUnavailableError) else EXIT_INVALID
        raise fail((f"{type(exc).__name__}: ", "red"), str(exc), code=code) from None


def when(timestamp_ms: int | None) -> str:
    """Unix ms as ``2026-01-02 03:04:05.678`` (UTC), or "never"."""
    if timestamp_ms is None:
        return "never"
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


_RELATIVE: Final = re.compile(r"^(?P<n>[0-9]{1,9})(?P<unit>s|m|h|d|w)$")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_instant(value: str, *, now_s: float | None = None) -> int:
    """An instant for ``--since`` / ``--until`` as Unix ms.

    Accepts Unix ms (``1767225600000``), ISO 8601 (``2026-01-01``,
    ``2026-01-01T12:00:00Z``; no zone means UTC) or an age before now
    (``90m``, ``24h``, ``7d``, by this machine's clock).
    """
    text = value.strip()
    if text.isdigit():
        return int(text)
    relative = _RELATIVE.match(text)
    if relative is not None:
        now = time.time() if now_s is None else now_s
        age = timedelta(seconds=int(relative["n"]) * _UNIT_S[relative["unit"]])
        return int((now - age.total_seconds()) * 1000)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not Unix ms, an ISO 8601 time or an age like 24h"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


SinceOption = Annotated[
    str | None,
    typer.Option(help="From this time, inclusive: Unix ms, ISO 8601, or an age (24h, 7d)"),
]
UntilOption = Annotated[
    str | None,
    typer.Option(help="Up to this time, inclusive: Unix ms, ISO 8601, or an age (24h, 7d)"),
]


def time_range(since: str | None, until: str | None) -> tuple[int | None, int | None]:
    start = parse_instant(since) if since is not None else None
    end = parse_instant(until) if until is not None else None
    if start is not None and end is not None and start > end:
        raise typer.BadParameter(f"--since ({since}) is after --until ({until})")
    return start, end
