"""``credits webhooks``: add, list and remove endpoints; list and retry parked deliveries.

A Typer sub-app of its own, registered by :mod:`credits.cli.commands` with
``add_typer``, against the same Redis as the other commands
(``CREDITS_REDIS_URL``, else a running ``credits up``). Delivery itself is the
worker's job (``credits.tasks.deliver_events``); ``retry`` is the one command
that sends a webhook, at once, from here, with the worker's checks and
signature, so an operator sees the endpoint's answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final

import typer
from rich.console import Console
from rich.table import Table

from credits import limits
from credits.client import Credits
from credits.errors import CreditsError
from credits.settings import CreditsSettings

app = typer.Typer(
    name="webhooks",
    help="Webhook endpoints and their parked (failed) deliveries.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

EXIT_FAILED: Final = 1
EXIT_NO_REDIS: Final = 2
FAILED_SHOWN_DEFAULT: Final = 50

DataDirOption = Annotated[
    Path | None,
    typer.Option(help="Data dir of a running `credits up` [default: CREDITS_DATA_DIR or .credits]"),
]


@contextmanager
def _client(data_dir: Path | None) -> Iterator[Credits]:
    """``CREDITS_REDIS_URL`` (all settings), else the Redis of a running ``credits up``."""
    from credits.cli.processes import UpState

    settings = CreditsSettings()
    url = None
    if settings.redis_url is None:
        state = UpState.read_live((data_dir or settings.data_dir).resolve())
        if state is None:
            err_console.print(
                "[red]No Redis:[/] set CREDITS_REDIS_URL, or start one with [bold]credits up[/]."
            )
            raise typer.Exit(EXIT_NO_REDIS)
        url = state.redis_url
    try:
        with Credits(url) if url else Credits.from_env() as client:
            yield client
    except CreditsError as exc:
        err_console.print(f"[red]{type(exc).__name__}:[/] {exc}")
        raise typer.Exit(EXIT_FAILED) from None


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def add(
    url: str,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", "-e", help="An event type (or prefix.*) to receive; repeatable"),
    ] = None,
    secret: Annotated[str | None, typer.Option(help="whsec_... (generated if left out)")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add an endpoint; prints its id and its signing secret (keep the secret)."""
    with _client(data_dir) as client:
        endpoint = client.add_webhook(url, events=event or None, secret=secret)
    console.print(f"[green]added[/] {endpoint.id}  {endpoint.url}")
    console.print(f"events: {', '.join(endpoint.events) if endpoint.events else 'all'}")
    console.print(f"secret: {endpoint.secret}")


@app.command("list")
def list_(
    show_secrets: Annotated[bool, typer.Option("--show-secrets")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """List the endpoints, oldest first."""
    with _client(data_dir) as client:
        endpoints = client.list_webhooks()
    table = Table(title="webhook endpoints")
    for column in ("id", "url", "events", "since (UTC)", *(("secret",) if show_secrets else ())):
        table.add_column(column)
    for e in endpoints:
        row = [e.id, e.url, ", ".join(e.events) if e.events else "all", _when(e.created_at)]
        table.add_row(*row, *((e.secret,) if show_secrets else ()))
    console.print(table)
    if not endpoints:
        console.print("No endpoints.")


@app.command()
def remove(endpoint_id: str, data_dir: DataDirOption = None) -> None:
    """Remove an endpoint with its delivery state and parked deliveries."""
    with _client(data_dir) as client:
        removed = client.remove_webhook(endpoint_id)
    if not removed:
        err_console.print(f"[red]No endpoint {endpoint_id}.[/]")
        raise typer.Exit(EXIT_FAILED)
    console.print(f"removed {endpoint_id}")


@app.command()
def failed(
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint's")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=limits.WEBHOOK_FAILED_LIST_MAX, help="How many, newest first")
    ] = FAILED_SHOWN_DEFAULT,
    data_dir: DataDirOption = None,
) -> None:
    """List parked deliveries (failed past their retry window), newest first."""
    from credits.transport import blocking_executor, drive
    from credits.webhooks.failed import list_failed
    from credits.webhooks.registry import check_endpoint_id

    with _client(data_dir) as client:
        ids = [e.id for e in client.list_webhooks()]
        if endpoint is not None:
            ids = [i for i in ids if i == check_endpoint_id(endpoint)]
        parked = drive(list_failed(ids, limit), blocking_executor(client.redis))
    table = Table(title="parked webhook deliveries (newest first)")
    for column in ("parked (UTC)", "endpoint", "event id", "type", "user", "attempts", "error"):
        table.add_column(column)
    for p in parked:
        table.add_row(_when(p.parked_at), p.endpoint_id, p.event.id, p.event.type,
                      p.event.user_id, str(p.attempts), p.error)  # fmt: skip
    console.print(table)
    if not parked:
        console.print("No parked deliveries.")


@app.command()
def retry(
    event_id: str,
    endpoint: Annotated[str | None, typer.Option(help="Only to this endpoint")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Send a parked event again now (to every endpoint that parked it); exit 1 unless delivered."""
    from credits.events import parse_event_id
    from credits.transport import blocking_executor
    from credits.webhooks.redeliver import retry_parked
    from credits.webhooks.settings import WebhookSettings

    settings = WebhookSettings()
    with _client(data_dir) as client:
        parse_event_id(event_id)
        outcomes = retry_parked(
            blocking_executor(client.redis),
            event_id,
            endpoint_id=endpoint,
            allow_private=settings.webhook_allow_private,
            timeout_s=settings.webhook_timeout_s,
        )
    if not outcomes:
        where = f" for {endpoint}" if endpoint else ""
        err_console.print(f"[red]{event_id} is not parked{where}.[/]")
        raise typer.Exit(EXIT_FAILED)
    for outcome in outcomes:
        if outcome.delivered:
            console.print(f"[green]delivered[/] {event_id} to {outcome.endpoint_id}")
        else:
            console.print(f"[red]failed[/] {event_id} to {outcome.endpoint_id}: {outcome.error}")
    if not all(outcome.delivered for outcome in outcomes):
        raise typer.Exit(EXIT_FAILED)
