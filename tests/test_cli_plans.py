"""The plan commands through Typer's CliRunner, in this process, against the suite's real Redis.

In-process rather than as subprocesses (test_cli_ops.py) so they stay in the
quick loop: the command, its options, its text and its ``--json`` are the same
code either way; only the interpreter start-up is left out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from ledger_fixtures import store_snapshot
from typer.testing import CliRunner, Result

from credits import Credits
from credits.cli.commands import app
from credits.keys import bucket_tag, user_keys

_OWN_PREFIXES = ("CREDITS_", "CELERY_", "UPSTASH_", "FLOWER_")


@pytest.fixture
def client(redis_url: str) -> Iterator[Credits]:
    with Credits(redis_url) as ledger:
        yield ledger


@pytest.fixture
def cli(redis_url: str) -> Any:
    """``cli(*args)``: the command's Result, with only CREDITS_REDIS_URL of our settings set."""
    runner = CliRunner()
    env: dict[str, str | None] = {
        name: None for name in os.environ if name.upper().startswith(_OWN_PREFIXES)
    }
    env.update({"CREDITS_REDIS_URL": redis_url, "COLUMNS": "80"})

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env)

    return run


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output + result.stderr
    assert "Traceback" not in result.output
    return result.stdout


def as_json(cli: Any, *args: str) -> Any:
    return json.loads(ok(cli(*args, "--json")))


def bucket_snapshot(store: Any, user_id: str) -> dict[Any, Any]:
    return store_snapshot(store, f"credits:{bucket_tag(user_keys(user_id).bucket)}:*")


def test_allowance_set_list_remove(cli: Any, client: Credits, user_id: str) -> None:
    text = ok(cli("allowance", "set", user_id, "pro", "500", "--every", "month", "--rollover-max",
                  "100", "--scope", "chat_message", "--scope", "canvas"))  # fmt: skip
    assert "allowance set for" in text and "500 credits every month" in text
    assert "granted 500" in text and "only for canvas, chat_message" in text
    assert client.get_balance(user_id) == 500
    [shown] = as_json(cli, "allowances", user_id)
    assert (shown["name"], shown["amount"], shown["rollover_max"]) == ("pro", 500, 100)
    assert shown == client.list_allowances(user_id)[0].model_dump()
    changed = ok(cli("allowance", "set", user_id, "pro", "800", "--every", "month"))
    assert "next period: 800 every month" in changed
    listed = ok(cli("allowances", user_id))
    assert f"allowances of {user_id}: 1" in listed and "next period" in listed
    assert "removed allowance pro" in ok(cli("allowance", "remove", user_id, "pro"))
    again = cli("allowance", "remove", user_id, "pro")
    assert again.exit_code == 1 and "no allowance pro is set for" in again.stderr
    assert as_json(cli, "allowances", user_id) == []


def test_an_allowance_anchored_ahead_grants_nothing_yet(
    cli: Any, client: Credits, user_id: str
) -> None:
    made = as_json(cli, "allowance", "set", user_id, "yearly", "1200", "--every", "year",
                   "--anchor", "2999-01-01", "--priority", "10")  # fmt: skip
    assert made["period_start"] is None and made["priority"] == 10
    assert client.get_balance(user_id) == 0
    assert "no period granted yet" in ok(cli("allowances", user_id))


def test_limit_set_refuses_a_deduct_past_it_and_remove(
    cli: Any, client: Credits, user_id: str
) -> None:
    client.add(user_id, 1000, "purchase")
    text = ok(cli("limit", "set", user_id, "daily", "100", "--every", "day", "--scope", "chat"))
    assert "used 0 of 100 per day" in text and "only for chat" in text
    client.deduct(user_id, 80, "chat")
    [shown] = as_json(cli, "limits", user_id)
    assert (shown["used"], shown["amount"], shown["every"]) == (80, 100, "day")
    assert "used 80 of 100 per day\n  window " in ok(cli("limits", user_id))
    assert ok(cli("limit", "remove", user_id, "daily"))
    assert cli("limit", "remove", user_id, "daily").exit_code == 1


def test_alert_set_list_remove(cli: Any, client: Credits, user_id: str) -> None:
    client.add(user_id, 300, "purchase")
    assert "not below it" in ok(cli("alert", "set", user_id, "low", "--below", "100"))
    client.deduct(user_id, 250, "chat")
    [shown] = as_json(cli, "alerts", user_id)
    assert (shown["name"], shown["below"], shown["triggered"]) == ("low", 100, True)
    assert "low  below 100  below it now" in ok(cli("alerts", user_id))
    assert ok(cli("alert", "remove", user_id, "low"))
    assert as_json(cli, "alerts", user_id) == []


def test_topup_show_set_confirm_once_and_remove(cli: Any, client: Credits, user_id: str) -> None:
    assert as_json(cli, "topup", "show", user_id) is None
    assert "no auto top-up is set for" in ok(cli("topup", "show", user_id))
    client.add(user_id, 500, "purchase")
    text = ok(cli("topup", "set", user_id, "--below", "100", "--amount", "1000"))
    assert "auto top-up on  below 100: add 1000" in text
    client.deduct(user_id, 450, "chat")  # 50: a request is made
    state = as_json(cli, "topup", "show", user_id)
    topup_id = state["open_topup_id"]
    assert topup_id and state["open_amount"] == 1000
    shown = ok(cli("topup", "show", user_id))
    assert topup_id in shown and f"credits topup confirm {topup_id} --paid" in shown
    paid = ok(cli("topup", "confirm", topup_id, "--paid"))
    assert "paid: 1000 credits granted   balance 1050" in paid
    repeat = as_json(cli, "topup", "confirm", topup_id, "--not-paid")
    assert (repeat["paid"], repeat["amount"], repeat["balance"]) == (True, 1000, 1050)  # the first
    assert client.get_balance(user_id) == 1050
    assert "removed auto top-up" in ok(cli("topup", "remove", user_id))
    assert cli("topup", "remove", user_id).exit_code == 1
    unknown = cli("topup", "confirm", topup_id, "--paid")
    assert unknown.exit_code == 1 and "TopupNotFoundError" in unknown.stderr


def test_three_declines_show_auto_top_up_off(cli: Any, client: Credits, user_id: str) -> None:
    client.add(user_id, 200, "purchase")
    ok(cli("topup", "set", user_id, "--below", "100", "--target", "500", "--max-per-month", "9"))
    for _ in range(3):
        client.deduct(user_id, 150, "chat")
        found = client.get_auto_topup(user_id)
        assert found is not None and found.open_topup_id is not None
        declined = ok(cli("topup", "confirm", found.open_topup_id, "--not-paid"))
        assert "not paid" in declined
        client.add(user_id, 150, "purchase")
    text = ok(cli("topup", "show", user_id))
    assert "auto top-up off" in text and "failed payments in a row 3" in text
    assert "at most 9" in text and "switched off after failed payments" in text


def test_confirm_needs_paid_or_not_paid(cli: Any) -> None:
    missing = cli("topup", "confirm", "top:{b1}:u:1-1")
    assert missing.exit_code == 2 and "--paid" in missing.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("allowance", "set", "{user}", "pro", "10", "--every", "fortnight"),
        ("allowance", "set", "{user}", "pro", "10", "--every", "month", "--effective", "later"),
        ("allowance", "set", "{user}", "pro", "0", "--every", "month"),
        ("allowance", "set", "{user}", "pro", "10", "--every", "month", "--anchor", "soon"),
        ("allowance", "set", "{user}", "not ok", "10", "--every", "month"),
        ("limit", "set", "{user}", "daily", "10", "--every", "year"),
        ("alert", "set", "{user}", "low", "--below", "0"),
        ("topup", "set", "{user}", "--below", "100"),
        ("topup", "set", "{user}", "--below", "100", "--amount", "5", "--target", "500"),
        ("topup", "confirm", "top:nope", "--paid"),
    ],
    ids=lambda args: " ".join(args),
)
def test_bad_input_exits_non_zero_and_writes_nothing(
    cli: Any, store: Any, user_id: str, args: tuple[str, ...]
) -> None:
    before = bucket_snapshot(store, user_id)
    done = cli(*(arg.replace("{user}", user_id) for arg in args))
    assert done.exit_code in (1, 2), done.output
    assert "Traceback" not in done.output + done.stderr
    assert bucket_snapshot(store, user_id) == before


def test_user_data_is_printed_as_written(cli: Any, client: Credits, user_id: str) -> None:
    odd = f"[bold]{user_id}[/bold]"
    client.add(odd, 50, "purchase")
    ok(cli("limit", "set", odd, "caps", "10", "--every", "hour", "--scope", "refund [/]"))
    ok(cli("topup", "set", odd, "--below", "100", "--amount", "10"))  # asks at once: 50 < 100
    for command in (("limits", odd), ("alerts", odd), ("allowances", odd), ("topup", "show", odd)):
        assert odd in ok(cli(*command)), command
    limits_text = ok(cli("limits", odd))
    assert "only for refund [/]" in limits_text
    found = client.get_auto_topup(odd)
    assert found is not None and found.open_topup_id is not None
    shown = ok(cli("topup", "show", odd))
    assert found.open_topup_id in shown  # the whole id, at 80 columns


def test_text_fits_80_columns_but_for_lines_with_ids(
    cli: Any, client: Credits, user_id: str
) -> None:
    client.add(user_id, 5000, "purchase")
    ok(cli("allowance", "set", user_id, "pro", "500", "--every", "month", "--rollover-max", "100"))
    ok(cli("allowance", "set", user_id, "pro", "800", "--every", "week"))
    ok(cli("limit", "set", user_id, "daily", "1000", "--every", "day"))
    ok(cli("topup", "set", user_id, "--below", "9000", "--target", "9999", "--max-per-month", "3"))
    for command in ("allowances", "limits"):
        text = ok(cli(command, user_id))
        assert max(len(line) for line in text.splitlines() if user_id not in line) <= 80, text
    text = ok(cli("topup", "show", user_id))
    assert max(len(line) for line in text.splitlines() if "top:" not in line) <= 80, text
