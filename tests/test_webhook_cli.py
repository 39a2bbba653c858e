"""``credits webhooks ...`` through Typer's CliRunner, in this process, against the suite's Redis.

In the quick loop, like tests/test_cli_plans.py; the same commands run as
subprocesses against real workers in tests/test_webhook_workers.py. Endpoints
live in one hash shared by the whole store, so every test removes the
endpoints it added (removing one drops its parked deliveries too), and finds
its own among the listed ones by id. Parked deliveries are written the way the
worker parks them (``park_commands``); a retry POSTs to a real receiver on
loopback, or to a closed port.

What is checked besides the behaviour: what a user or an endpoint wrote (a URL
path, an error text, a user id) is printed as itself, never read as Rich
markup; no id is cut on a 40-column terminal; ``--json`` is one document that
parses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from receiver_rig import Receiver
from typer.testing import CliRunner, Result

from credits import Credits, LedgerEvent
from credits.cli import app as cli_app
from credits.cli.commands import app
from credits.keys import bucket_of
from credits.protocol import Batch, Steps, batch_values
from credits.transport import blocking_executor, drive
from credits.webhooks.delivery import server_time
from credits.webhooks.failed import FailedDelivery, park_commands

_OWN_PREFIXES = ("CREDITS_", "CELERY_", "UPSTASH_", "FLOWER_")
MARKUP = "[red]x[/]"
CLOSED_PORT_URL = f"http://127.0.0.1:9/hooks/{MARKUP}/[bold]"  # discard port: refused at once
NARROW = "40"

Cli = Callable[..., Result]


class Added(NamedTuple):
    text: str
    endpoint: dict[str, Any]


@pytest.fixture
def client(redis_url: str) -> Iterator[Credits]:
    with Credits(redis_url) as ledger:
        yield ledger


@pytest.fixture
def added(client: Credits) -> Iterator[list[str]]:
    """Ids of the endpoints the test added; removed at the end whatever happened."""
    ids: list[str] = []
    yield ids
    for endpoint_id in ids:
        client.remove_webhook(endpoint_id)


@pytest.fixture
def cli(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli(*args, columns="80")``: the Result, with CREDITS_REDIS_URL and loopback allowed.

    The consoles read the width from ``COLUMNS`` at each print unless one was
    fixed when they were made; unfixed here, so ``columns`` is the terminal's.
    """
    for console in (cli_app.console, cli_app.err_console):
        monkeypatch.setattr(console, "_width", None)
    runner = CliRunner()
    base: dict[str, str | None] = {
        name: None for name in os.environ if name.upper().startswith(_OWN_PREFIXES)
    }
    base.update(
        CREDITS_REDIS_URL=redis_url, CREDITS_WEBHOOK_ALLOW_PRIVATE="1",
        CREDITS_WEBHOOK_TIMEOUT_S="2",
    )  # fmt: skip

    def run(*args: str, columns: str = "80") -> Result:
        return runner.invoke(app, list(args), env={**base, "COLUMNS": columns})

    return run


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output + result.stderr
    assert "Traceback" not in result.output
    return result.stdout


def add(cli: Cli, added: list[str], url: str, *options: str, columns: str = "80") -> Added:
    """Add through the CLI: what it printed, and the endpoint as ``list --json`` has it."""
    before = {e["id"] for e in json.loads(ok(cli("webhooks", "list", "--json")))}
    text = ok(cli("webhooks", "add", url, *options, columns=columns))
    listed = json.loads(ok(cli("webhooks", "list", "--json", "--show-secrets")))
    [new] = [e for e in listed if e["id"] not in before]
    added.append(new["id"])
    return Added(text, dict(new))


def _park(failed: FailedDelivery) -> Steps[None]:
    batch_values((yield Batch(tuple(park_commands(failed)))))


def park(
    client: Credits, endpoint_id: str, user_id: str, *, error: str, seq: int = 0
) -> LedgerEvent:
    """A parked delivery of a reservation.expired event of ``user_id``, as the worker parks it."""
    execute = blocking_executor(client.redis)
    now_ms = int(drive(server_time(), execute))
    event = LedgerEvent(
        id=f"evt_{bucket_of(user_id)}_{now_ms}-{seq}",
        type="reservation.expired",
        created_at=now_ms,
        user_id=user_id,
        data={"reservation_id": "res_0"},
    )
    parked = FailedDelivery(
        endpoint_id=endpoint_id, event=event, attempts=4, error=error, parked_at=now_ms + seq
    )
    drive(_park(parked), execute)
    return event


# --------------------------------------------------------------------------- endpoints


def test_add_list_remove(cli: Cli, client: Credits, added: list[str]) -> None:
    text = ok(cli("webhooks", "add", "http://127.0.0.1:9/hook", "-e", "reservation.*",
                  "-e", "settlement.shortfall", "--secret", "whsec_" + "A" * 32))  # fmt: skip
    [endpoint] = [e for e in client.list_webhooks() if e.url == "http://127.0.0.1:9/hook"
                  and e.id not in added]  # fmt: skip
    added.append(endpoint.id)
    assert f"added {endpoint.id}  http://127.0.0.1:9/hook" in text
    assert "events: reservation.*, settlement.shortfall" in text
    assert f"secret: {endpoint.secret}" in text
    listed = ok(cli("webhooks", "list"))
    assert endpoint.id in listed and "  url http://127.0.0.1:9/hook" in listed
    assert "  events reservation.*, settlement.shortfall   since " in listed
    assert endpoint.secret not in listed
    assert f"  secret {endpoint.secret}" in ok(cli("webhooks", "list", "--show-secrets"))
    assert f"removed {endpoint.id}" in ok(cli("webhooks", "remove", endpoint.id))
    assert endpoint.id not in [e.id for e in client.list_webhooks()]
    again = cli("webhooks", "remove", endpoint.id)
    assert again.exit_code == 1 and f"No endpoint {endpoint.id}." in again.stderr


def test_list_json_is_the_models_without_secrets_unless_asked(
    cli: Cli, client: Credits, added: list[str]
) -> None:
    _, made = add(cli, added, "http://127.0.0.1:9/json")
    endpoint = next(e for e in client.list_webhooks() if e.id == made["id"])
    assert made == endpoint.model_dump()
    [shown] = [
        e for e in json.loads(ok(cli("webhooks", "list", "--json"))) if e["id"] == made["id"]
    ]
    assert "secret" not in shown
    assert shown == {k: v for k, v in endpoint.model_dump().items() if k != "secret"}
    assert shown["events"] is None


def test_markup_in_a_url_is_printed_as_itself(cli: Cli, added: list[str]) -> None:
    text, endpoint = add(cli, added, CLOSED_PORT_URL)
    assert endpoint["url"] == CLOSED_PORT_URL
    assert text.startswith(f"added {endpoint['id']}  {CLOSED_PORT_URL}\n")
    assert f"{endpoint['id']}\n  url {CLOSED_PORT_URL}\n" in ok(cli("webhooks", "list"))


def test_refusals_exit_1_with_the_error(cli: Cli) -> None:
    public_only = cli("webhooks", "add", "http://127.0.0.1:9/x", "-e", "no such [bold]type")
    assert public_only.exit_code == 1 and "InvalidInputError: " in public_only.stderr
    assert "[bold]" in public_only.stderr
    malformed = cli("webhooks", "remove", "we_[red]nope[/]")
    assert malformed.exit_code == 1 and "InvalidInputError: " in malformed.stderr
    assert "we_[red]nope[/]" in malformed.stderr
    bad_filter = cli("webhooks", "failed", "--endpoint", "[red]x[/]")
    assert bad_filter.exit_code == 1 and "[red]x[/]" in bad_filter.stderr
    bad_event = cli("webhooks", "retry", "evt_[red]x[/]")
    assert bad_event.exit_code == 1 and "evt_[red]x[/]" in bad_event.stderr
    bad_target = cli("webhooks", "retry", "evt_1_1-0", "--endpoint", "[red]x[/]")
    assert bad_target.exit_code == 1 and "InvalidInputError: " in bad_target.stderr
    assert "[red]x[/]" in bad_target.stderr


def test_no_redis_exits_2(tmp_path: Path) -> None:
    runner = CliRunner()
    env: dict[str, str | None] = {
        name: None for name in os.environ if name.upper().startswith(_OWN_PREFIXES)
    }
    for args in (("list",), ("list", "--json"), ("failed",), ("add", "http://127.0.0.1:9/"),
                 ("remove", "we_0123456789abcdef"), ("retry", "evt_1_1-0")):  # fmt: skip
        result = runner.invoke(app, ["webhooks", *args, "--data-dir", str(tmp_path)], env=env)
        assert result.exit_code == 2, (args, result.output)
        assert "No Redis" in result.stderr and result.stdout == ""


# --------------------------------------------------------------------------- parked deliveries


def test_failed_lists_parked_deliveries_literally_and_whole_at_40_columns(
    cli: Cli, client: Credits, added: list[str]
) -> None:
    user = "user [bold]markup[/] " + "u" * 40
    _, endpoint = add(cli, added, CLOSED_PORT_URL)
    events = [
        park(client, endpoint["id"], user, error=f"HTTP 500: {MARKUP} [/] body", seq=seq)
        for seq in range(2)
    ]
    text = ok(cli("webhooks", "failed", "--endpoint", endpoint["id"], columns=NARROW))
    assert "…" not in text
    assert text.index(events[1].id) < text.index(events[0].id)  # newest first
    for event in events:
        assert f"{event.id}  reservation.expired  user {user}\n" in text
    assert f"  endpoint {endpoint['id']}   attempts 4   parked " in text
    assert f"  error HTTP 500: {MARKUP} [/] body\n" in text
    assert "parked webhook deliveries: 2 shown, newest first" in text
    [newest] = json.loads(
        ok(cli("webhooks", "failed", "--endpoint", endpoint["id"], "--limit", "1", "--json"))
    )
    assert newest["endpoint_id"] == endpoint["id"] and newest["attempts"] == 4
    assert newest["event"] == events[1].model_dump()
    assert newest["error"] == f"HTTP 500: {MARKUP} [/] body"
    everyone = json.loads(ok(cli("webhooks", "failed", "--json")))
    assert {e.id for e in events} <= {p["event"]["id"] for p in everyone}


def test_list_keeps_ids_and_urls_whole_at_40_columns(cli: Cli, added: list[str]) -> None:
    long_url = "http://127.0.0.1:9/" + "/".join(["segment"] * 12) + f"/{MARKUP}"
    text, endpoint = add(cli, added, long_url, "-e", "reservation.*", columns=NARROW)
    assert text.startswith(f"added {endpoint['id']}  {long_url}\n") and "…" not in text
    listed = ok(cli("webhooks", "list", columns=NARROW))
    assert "…" not in listed
    assert f"{endpoint['id']}\n  url {long_url}\n  events reservation.*   since " in listed


def test_failed_with_none_parked(cli: Cli, added: list[str]) -> None:
    _, endpoint = add(cli, added, "http://127.0.0.1:9/none")
    assert ok(cli("webhooks", "failed", "--endpoint", endpoint["id"])) == "No parked deliveries.\n"
    assert json.loads(ok(cli("webhooks", "failed", "--endpoint", endpoint["id"], "--json"))) == []
    other = "we_0123456789abcdef"
    assert json.loads(ok(cli("webhooks", "failed", "--endpoint", other, "--json"))) == []


def test_retry_delivers_and_strikes_off(
    cli: Cli, client: Credits, added: list[str], user_id: str
) -> None:
    with Receiver() as receiver:
        _, endpoint = add(cli, added, receiver.url)
        event = park(client, endpoint["id"], user_id, error="HTTP 500")
        text = ok(cli("webhooks", "retry", event.id, columns=NARROW))
        assert text == f"delivered {event.id} to {endpoint['id']}\n"
        assert receiver.delivered_ids() == [event.id]
    assert json.loads(ok(cli("webhooks", "failed", "--endpoint", endpoint["id"], "--json"))) == []
    again = cli("webhooks", "retry", event.id)
    assert again.exit_code == 1 and again.stderr == f"{event.id} is not parked.\n"
    elsewhere = cli("webhooks", "retry", event.id, "--endpoint", endpoint["id"])
    assert elsewhere.exit_code == 1
    assert elsewhere.stderr == f"{event.id} is not parked for {endpoint['id']}.\n"


def test_a_failed_retry_exits_1_and_stays_parked(
    cli: Cli, client: Credits, added: list[str], user_id: str
) -> None:
    _, endpoint = add(cli, added, CLOSED_PORT_URL)
    event = park(client, endpoint["id"], user_id, error=MARKUP)
    result = cli("webhooks", "retry", event.id, "--endpoint", endpoint["id"], columns=NARROW)
    assert result.exit_code == 1, result.output + result.stderr
    assert result.stdout.startswith(f"failed {event.id} to {endpoint['id']}: ")
    [still] = json.loads(ok(cli("webhooks", "failed", "--endpoint", endpoint["id"], "--json")))
    assert still["event"]["id"] == event.id and still["attempts"] == 5
    assert still["error"] != MARKUP and still["error"] in result.stdout
