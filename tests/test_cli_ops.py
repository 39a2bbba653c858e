"""The operator commands, as subprocesses against the suite's Redis: an operator needs no Python.

``grant``, ``holds``, ``release``, ``verify``, ``export``, ``keys``, ``--json``
on every read, ``history --since/--until``, and text that never cuts an id
nor reads what a user wrote as markup.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cli_rig import NARROW, WIDE, credits_cli
from worker_rig import clean_env

from credits import Credits
from credits.keys import user_keys

pytestmark = pytest.mark.system  # runs the command as subprocesses


@pytest.fixture
def client(redis_url: str) -> Iterator[Credits]:
    with Credits(redis_url) as ledger:
        yield ledger


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    return clean_env(CREDITS_REDIS_URL=redis_url, **WIDE)


def as_json(*args: str, env: dict[str, str]) -> Any:
    done = credits_cli(*args, "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_history_at_80_columns_shows_every_id_whole(
    redis_url: str, client: Credits, user_id: str
) -> None:
    client.add(user_id, 100, "purchase", {"order": "ord_[b]1[/b]"})
    hold = client.reserve(user_id, 100, "training_job", ttl=1)
    client.add(user_id, 5, "refund [/]")
    settled = Credits(redis_url, clock=lambda: time.time() + 5)  # the webhook came late
    try:
        late = settled.settle(hold.id, 150)
    finally:
        settled.close()
    assert late.late and late.shortfall == 45
    done = credits_cli("history", user_id, env=clean_env(CREDITS_REDIS_URL=redis_url, **NARROW))
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "…" not in text and "Traceback" not in text
    for tx in client.get_transactions(user_id):
        assert tx.tx_id in text
    assert hold.id in text  # the whole reservation id, not cut
    assert "refund [/]" in text and "ord_[b]1[/b]" in text  # as written, never as markup
    assert "shortfall 45" in text and "late" in text
    assert max(len(line) for line in text.splitlines() if hold.id not in line) <= 80


def test_a_user_id_with_markup_is_shown_as_written(
    redis_url: str, client: Credits, user_id: str
) -> None:
    odd = f"[bold]{user_id}[/bold]"
    client.add(odd, 3, "grant")
    env = clean_env(CREDITS_REDIS_URL=redis_url, **NARROW)
    for command in ("balance", "history", "holds"):
        done = credits_cli(command, odd, env=env)
        assert done.returncode == 0, done.stderr
        assert odd in done.stdout, command


def test_json_on_every_read_command(env: dict[str, str], client: Credits, user_id: str) -> None:
    client.add(user_id, 50, "grant")
    hold = client.reserve(user_id, 20, "video_generation", ttl=600)
    assert as_json("balance", user_id, env=env) == {
        "user_id": user_id, "balance": 30, "held": 20,
        "created_at": client.get_account(user_id).created_at,
    }  # fmt: skip
    history = as_json("history", user_id, env=env)
    assert [tx["type"] for tx in history] == ["reserve", "add"]
    assert history[0]["reservation_id"] == hold.id
    assert [h["id"] for h in as_json("holds", user_id, env=env)] == [hold.id]
    verified = as_json("verify", user_id, env=env)
    assert verified["verification"]["valid"] is True and verified["fixed"] is False
    assert isinstance(as_json("keys", "list", env=env), list)


def test_history_in_a_time_range(env: dict[str, str], client: Credits, user_id: str) -> None:
    client.add(user_id, 10, "grant")
    first = client.get_transactions(user_id)[0]
    client.deduct(user_id, 1, "chat_message")
    newest = client.get_transactions(user_id)[0]
    until_first = as_json("history", user_id, "--until", str(first.timestamp), env=env)
    assert first.tx_id in [tx["tx_id"] for tx in until_first]
    assert all(tx["timestamp"] <= first.timestamp for tx in until_first)
    since_newest = as_json("history", user_id, "--since", str(newest.timestamp), env=env)
    assert since_newest[0]["tx_id"] == newest.tx_id
    assert as_json("history", user_id, "--since", "1h", env=env)  # by age
    future = as_json("history", user_id, "--since", "2999-01-01T00:00:00Z", env=env)
    assert future == []
    bad = credits_cli("history", user_id, "--since", "yesterday-ish", env=env)
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr


def test_grant_once_per_idempotency_key(env: dict[str, str], client: Credits, user_id: str) -> None:
    args = ("grant", user_id, "250", "--reason", "support ticket 42", "--idempotency-key", "t-42")
    first = credits_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert "granted 250" in first.stdout and "t-42" in first.stdout
    again = credits_cli(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert client.get_balance(user_id) == 250
    (tx,) = client.get_transactions(user_id)
    assert (tx.type, tx.action, tx.metadata["reason"]) == ("add", "grant", "support ticket 42")
    assert tx.metadata["source"] == "credits-cli"
    conflict = credits_cli("grant", user_id, "999", "--idempotency-key", "t-42", env=env)
    assert conflict.returncode == 1 and "IdempotencyConflictError" in conflict.stderr
    refused = credits_cli("grant", user_id, "0", env=env)
    assert refused.returncode == 2  # Typer refuses it before anything is sent


def test_grant_makes_a_lot_with_its_terms_and_lots_lists_it(
    env: dict[str, str], client: Credits, user_id: str
) -> None:
    client.add(user_id, 40, "purchase")
    done = credits_cli(
        "grant", user_id, "25", "--expires-in", "86400", "--category", "promotional",
        "--priority", "10", "--reason", "apology", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (promo,) = [lot for lot in client.list_lots(user_id) if lot.category == "promotional"]
    assert (promo.amount, promo.priority) == (25, 10)
    assert promo.expires_at is not None and promo.id in done.stdout
    listed = credits_cli("lots", user_id, env=env)
    assert listed.returncode == 0, listed.stderr
    text = listed.stdout
    assert text.index(promo.id) < text.index("purchase")  # drawn first: listed first
    assert "65 credits spendable" in text
    client.deduct(user_id, 25, "chat")
    finished = as_json("lots", user_id, "--status", "exhausted", env=env)
    assert [lot["id"] for lot in finished] == [promo.id]
    history = credits_cli("history", user_id, env=env).stdout
    assert f"lot {promo.id}  -25" in history
    bad = credits_cli("grant", user_id, "5", "--category", "allowance", env=env)
    assert bad.returncode == 1 and "InvalidInputError" in bad.stderr


def test_holds_and_release(env: dict[str, str], client: Credits, user_id: str) -> None:
    client.add(user_id, 100, "grant")
    hold = client.reserve(user_id, 60, "video_generation", ttl=600)
    listed = credits_cli("holds", user_id, env=env)
    assert hold.id in listed.stdout and "60 credits held" in listed.stdout
    released = credits_cli("release", hold.id, "--reason", "stuck job", env=env)
    assert released.returncode == 0, released.stderr
    assert "60 credits back" in released.stdout
    assert client.get_reservation(hold.id).status == "released"
    assert credits_cli("release", hold.id, env=env).returncode == 0  # repeating is safe
    assert as_json("holds", user_id, env=env) == []
    assert [h["status"] for h in as_json("holds", user_id, "--status", "all", env=env)] == [
        "released"
    ]
    unknown = credits_cli("release", "rsv:nope", env=env)
    assert unknown.returncode == 1 and "InvalidInputError" in unknown.stderr


def test_verify_shows_cached_and_calculated_then_fixes(
    env: dict[str, str], client: Credits, user_id: str
) -> None:
    client.add(user_id, 500, "grant")
    client.redis.hset(user_keys(user_id).account, "bal", 450)  # behind the ledger's back
    found = credits_cli("verify", user_id, env=env)
    assert found.returncode == 1
    assert "INVALID" in found.stdout and "balance cached 450 → calculated 500" in found.stdout
    fixed = credits_cli("verify", user_id, "--fix", env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "rebuilt" in fixed.stdout
    assert client.get_balance(user_id) == 500 and client.verify_balance(user_id).valid


def test_export_jsonl_and_csv(env: dict[str, str], client: Credits, user_id: str) -> None:
    client.add(user_id, 100, "purchase", {"order": 'a,b\n"c"'})
    for i in range(3):
        client.deduct(user_id, 1, "chat_message", {"i": i})
    every = list(reversed(client.get_transactions(user_id)))  # oldest first
    jsonl = credits_cli("export", user_id, env=env)
    assert jsonl.returncode == 0, jsonl.stderr
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [r["tx_id"] for r in rows] == [tx.tx_id for tx in every]
    assert rows[0]["metadata"] == {"order": 'a,b\n"c"'}

    table = credits_cli("export", user_id, "--format", "csv", env=env)
    parsed = list(csv.DictReader(io.StringIO(table.stdout)))
    assert [r["tx_id"] for r in parsed] == [tx.tx_id for tx in every]
    assert json.loads(parsed[0]["metadata"]) == {"order": 'a,b\n"c"'}
    assert parsed[1]["balance_delta"] == "-1"

    since = credits_cli("export", user_id, "--since", str(every[1].timestamp), env=env)
    kept = [json.loads(line)["tx_id"] for line in since.stdout.splitlines()]
    assert every[0].tx_id not in kept or every[0].timestamp == every[1].timestamp
    assert kept[-1] == every[-1].tx_id


def test_export_of_every_user_includes_this_one(
    env: dict[str, str], client: Credits, user_id: str, tmp_path: Any
) -> None:
    client.add(user_id, 9, "grant")
    out = tmp_path / "all.jsonl"
    done = credits_cli("export", "--output", str(out), env=env)
    assert done.returncode == 0, done.stderr
    assert "transactions written" in done.stderr
    mine = [
        row for row in map(json.loads, out.read_text().splitlines()) if row["user_id"] == user_id
    ]
    assert [row["amount"] for row in mine] == [9]


def test_keys_create_list_revoke(env: dict[str, str]) -> None:
    made = as_json("keys", "create", "--scope", "write", "--name", "cli-test", env=env)
    assert made["key"].startswith("ck_live_") and made["scope"] == "write"
    listed = {key["id"]: key for key in as_json("keys", "list", env=env)}
    assert listed[made["id"]]["name"] == "cli-test"
    assert "sha256" not in listed[made["id"]] and made["key"] not in json.dumps(listed)
    revoked = credits_cli("keys", "revoke", made["id"], env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert made["id"] not in {key["id"] for key in as_json("keys", "list", env=env)}
    again = credits_cli("keys", "revoke", made["id"], env=env)
    assert again.returncode == 1
    bad = credits_cli("keys", "create", "--scope", "root", env=env)
    assert bad.returncode == 1 and "scope must be one of" in bad.stderr
