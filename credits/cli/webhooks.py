"""``credits webhooks``: add, list and remove endpoints; list and retry parked deliveries.

A Typer sub-app of its own, registered by :mod:`credits.cli.commands` with
``add_typer``, that finds the ledger as every command does
(:func:`~credits.cli.app.open_ledger`: ``CREDITS_REDIS_URL``, else a running
``credits up``, else the data dir's embedded server; exit 2 with none, 3 when
the store was unreachable mid-call). Delivery itself is the worker's job
(``credits.tasks.deliver_events``); ``retry`` is the one command that sends a
webhook, at once, from here, with the worker's checks and signature, so an
operator sees the endpoint's answer.

Output follows :mod:`credits.cli.app`: one block per endpoint or parked
delivery, no id cut, nothing read as markup (a URL, an error an endpoint
answered with, an event's user id), ``--json`` on ``list`` and ``failed``.
Exit codes: 1 for what the ledger refused (a malformed id), a ``remove`` of no
endpoint, a ``retry`` of an event not parked or not delivered.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import typer
from rich.text import Text

from credits import limits
from credits.cli.app import (
    EXIT_INVALID,
    DataDirOption,
    JsonOption,
    console,
    fail,
    line,
    open_ledger,
    print_json,
    say,
    when,
)
from credits.models import WebhookEndpoint
from credits.webhooks.failed import FailedDelivery

app = typer.Typer(
    name="webhooks",
    help="Webhook endpoints and their parked (failed) deliveries.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

FAILED_SHOWN_DEFAULT: Final = 50


def _events_text(events: list[str] | None) -> str:
    return ", ".join(events) if events else "all"


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
    with open_ledger(data_dir) as client:
        endpoint = client.add_webhook(url, events=event or None, secret=secret)
    say(("added ", "green"), (endpoint.id, "bold"), "  ", endpoint.url)
    say("events: ", _events_text(endpoint.events))
    say("secret: ", endpoint.secret)


def endpoint_public(endpoint: WebhookEndpoint, *, show_secret: bool) -> dict[str, Any]:
    """The endpoint's ``model_dump()``, without its secret unless asked for."""
    dumped = endpoint.model_dump()
    if not show_secret:
        del dumped["secret"]
    return dumped


def endpoint_lines(endpoint: WebhookEndpoint, *, show_secret: bool) -> list[Text]:
    lines = [
        line((endpoint.id, "bold")),
        line("  url ", endpoint.url),
        line("  events ", _events_text(endpoint.events), "   since ", when(endpoint.created_at)),
    ]
    if show_secret:
        lines.append(line("  secret ", endpoint.secret))
    return lines


@app.command("list")
def list_(
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="Print the signing secrets too (and in --json)")
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the endpoints, oldest first."""
    with open_ledger(data_dir) as client:
        endpoints = client.list_webhooks()
    if as_json:
        print_json([endpoint_public(e, show_secret=show_secrets) for e in endpoints])
        return
    if not endpoints:
        say("No endpoints.")
        return
    say(("webhook endpoints", "bold"), f": {len(endpoints)}, oldest first")
    for endpoint in endpoints:
        console.print()
        for text in endpoint_lines(endpoint, show_secret=show_secrets):
            console.print(text)


@app.command()
def remove(endpoint_id: str, data_dir: DataDirOption = None) -> None:
    """Remove an endpoint with its delivery state and parked deliveries."""
    with open_ledger(data_dir) as client:
        removed = client.remove_webhook(endpoint_id)
    if not removed:
        raise fail("No endpoint ", endpoint_id, ".", code=EXIT_INVALID)
    say("removed ", endpoint_id)


def parked_lines(parked: FailedDelivery) -> list[Text]:
    """One block per parked delivery: the event id whole, then where, when and why."""
    event = parked.event
    return [
        line((event.id, "bold"), "  ", (event.type, "cyan"), "  user ", event.user_id),
        line(
            "  endpoint ", parked.endpoint_id,
            "   attempts ", str(parked.attempts),
            "   parked ", when(parked.parked_at),
        ),
        line("  error ", (parked.error, "red")),
    ]  # fmt: skip


@app.command()
def failed(
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint's")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=limits.WEBHOOK_FAILED_LIST_MAX, help="How many, newest first")
    ] = FAILED_SHOWN_DEFAULT,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List parked deliveries (failed past their retry window), newest first."""
    from credits.transport import blocking_executor, drive
    from credits.webhooks.failed import list_failed
    from credits.webhooks.registry import check_endpoint_id

    with open_ledger(data_dir) as client:
        only = None if endpoint is None else check_endpoint_id(endpoint)  # even with none stored
        ids = [e.id for e in client.list_webhooks() if only in (None, e.id)]
        parked = drive(list_failed(ids, limit), blocking_executor(client.redis))
    if as_json:
        print_json([p.model_dump() for p in parked])
        return
    if not parked:
        say("No parked deliveries.")
        return
    say(("parked webhook deliveries", "bold"), f": {len(parked)} shown, newest first")
    for p in parked:
        console.print()
        for text in parked_lines(p):
            console.print(text)


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
    from credits.webhooks.registry import check_endpoint_id
    from credits.webhooks.settings import WebhookSettings

    settings = WebhookSettings()
    with open_ledger(data_dir) as client:
        parse_event_id(event_id)
        if endpoint is not None:
            check_endpoint_id(endpoint)
        outcomes = retry_parked(
            blocking_executor(client.redis),
            event_id,
            endpoint_id=endpoint,
            allow_private=settings.webhook_allow_private,
            timeout_s=settings.webhook_timeout_s,
        )
    if not outcomes:
        where = ("",) if endpoint is None else (" for ", endpoint)
        raise fail(event_id, " is not parked", *where, ".", code=EXIT_INVALID)
    for outcome in outcomes:
        if outcome.delivered:
            say(("delivered ", "green"), event_id, " to ", outcome.endpoint_id)
        else:
            say(("failed ", "red"), event_id, " to ", outcome.endpoint_id, ": ", outcome.error)
    if not all(outcome.delivered for outcome in outcomes):
        raise typer.Exit(EXIT_INVALID)
