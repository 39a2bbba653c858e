"""The HTTP API over real loopback HTTP (uvicorn in a thread), against the suite's real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from http_rig import Served, bearer, make_key, scoped_tokens, serve
from ledger_fixtures import store_snapshot

from credits import Credits, limits
from credits.http import keys
from credits.http.metrics import capped
from credits.redis_server import free_port
from credits.stats import SumKey, open_holds, parse_field, sweep_lag_ms
from credits.transport import blocking_executor, drive


@pytest.fixture(scope="module")
def client(redis_url: str) -> Iterator[Credits]:
    with Credits(redis_url) as ledger:
        yield ledger


@pytest.fixture(scope="module")
def served(redis_url: str) -> Iterator[Served]:
    with serve(redis_url) as running:
        yield running


@pytest.fixture(scope="module")
def tokens(client: Credits) -> Iterator[dict[str, str]]:
    with scoped_tokens(client, "test") as made:
        yield made


@pytest.fixture
def http(served: Served, tokens: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base_url, headers=bearer(tokens["write"]), timeout=10) as c:
        yield c


def test_health_and_openapi_need_no_key(served: Served) -> None:
    assert httpx.get(f"{served.base_url}/healthz").json() == {"status": "ok", "store": "ok"}
    schema = httpx.get(f"{served.base_url}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    deduct = schema["paths"]["/v1/users/{user_id}/deduct"]["post"]
    assert {"401", "402", "409", "422", "429", "503"} <= set(deduct["responses"])
    payment = schema["components"]["schemas"]["InsufficientCreditsBody"]
    assert {"error", "message", "required", "available"} <= set(payment["required"])
    assert not any(path.startswith("/admin") for path in schema["paths"])


def test_keys_and_scopes(served: Served, tokens: dict[str, str], user_id: str) -> None:
    url = f"{served.base_url}/v1/users/{user_id}"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"] == "unauthorized"
    forged = "ck_live_" + "0" * 16 + "_" + "A" * 43
    assert httpx.get(url, headers=bearer(forged)).status_code == 401
    assert httpx.get(url, headers=bearer("not-a-key")).status_code == 401
    assert httpx.get(url, headers=bearer(tokens["read"])).status_code == 200
    refused = httpx.post(
        f"{url}/deduct", json={"amount": 1, "action": "x"}, headers=bearer(tokens["read"])
    )
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert httpx.get(url, headers=bearer(tokens["admin"])).status_code == 200


def test_a_revoked_key_is_refused(served: Served, client: Credits, user_id: str) -> None:
    token = make_key(client, "read", "revoked")
    key_id = keys.key_id_of(token)
    assert key_id is not None
    assert drive(keys.revoke_key(key_id), blocking_executor(client.redis)) is True
    answer = httpx.get(f"{served.base_url}/v1/users/{user_id}", headers=bearer(token))
    assert answer.status_code == 401


def test_keys_are_stored_hashed(client: Credits) -> None:
    token = make_key(client, "write", "hashed")
    key_id = keys.key_id_of(token)
    assert key_id is not None
    stored = client.redis.hget(keys.KEYS_HASH, key_id)
    assert isinstance(stored, str)
    assert token not in stored and token.rsplit("_", 1)[1] not in stored
    assert keys.digest(token) in stored
    drive(keys.revoke_key(key_id), blocking_executor(client.redis))


def test_deduct_add_and_the_402_body(http: httpx.Client, user_id: str) -> None:
    started = http.post(f"/v1/users/{user_id}/initialize", json={"credits": 100})
    assert started.status_code == 200, started.text
    assert started.json()["balance"] == 100
    again = http.post(f"/v1/users/{user_id}/initialize", json={"credits": 999})
    assert again.json() == started.json()  # once per user
    spent = http.post(
        f"/v1/users/{user_id}/deduct",
        json={"amount": 10, "action": "chat_message", "metadata": {"app": "chat"}},
    )
    assert spent.status_code == 200 and spent.json()["balance"] == 90
    short = http.post(f"/v1/users/{user_id}/deduct", json={"amount": 500, "action": "video"})
    assert short.status_code == 402
    assert short.json() == {
        "error": "insufficient_credits",
        "message": "insufficient credits: required 500, available 90",
        "required": 500,
        "available": 90,
    }
    bought = http.post(f"/v1/users/{user_id}/add", json={"amount": 1000, "action": "purchase"})
    assert bought.json()["balance"] == 1090
    account = http.get(f"/v1/users/{user_id}").json()
    assert (account["user_id"], account["balance"], account["held"]) == (user_id, 1090, 0)


def test_add_makes_a_lot_with_its_terms_and_the_user_shows_its_lots(
    http: httpx.Client, user_id: str
) -> None:
    paid = http.post(f"/v1/users/{user_id}/add", json={"amount": 100, "action": "purchase"})
    assert paid.status_code == 200, paid.text
    promo = http.post(
        f"/v1/users/{user_id}/add",
        json={"amount": 20, "action": "welcome_back", "category": "promotional",
              "priority": 5, "expires_in": 3600, "scope": ["chat_message"]},
    )  # fmt: skip
    assert promo.status_code == 200, promo.text
    lots = http.get(f"/v1/users/{user_id}").json()["lots"]
    assert [lot["id"] for lot in lots] == [promo.json()["lot_id"], paid.json()["lot_id"]]
    assert (lots[0]["category"], lots[0]["scope"], lots[0]["remaining"]) == (
        "promotional", ["chat_message"], 20,
    )  # fmt: skip
    refused = http.post(
        f"/v1/users/{user_id}/add",
        json={"amount": 5, "action": "grant", "category": "allowance"},
    )
    assert refused.status_code == 422 and refused.json()["error"] == "invalid_input"
    past = http.post(
        f"/v1/users/{user_id}/add", json={"amount": 5, "action": "grant", "expires_at": 1}
    )
    assert past.status_code == 422  # in the past by the server's clock: nothing written
    assert len(http.get(f"/v1/users/{user_id}").json()["lots"]) == 2


def test_idempotency_key_applies_once_and_conflicts(
    http: httpx.Client, client: Credits, user_id: str
) -> None:
    client.add(user_id, 100, "purchase")
    headers = {"Idempotency-Key": f"order-{user_id}"}
    body = {"amount": 30, "action": "canvas_generation_simple"}
    first = http.post(f"/v1/users/{user_id}/deduct", json=body, headers=headers)
    repeat = http.post(f"/v1/users/{user_id}/deduct", json=body, headers=headers)
    assert first.status_code == repeat.status_code == 200
    assert first.json() == repeat.json()
    other = http.post(f"/v1/users/{user_id}/deduct", json={**body, "amount": 31}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency_conflict"
    assert other.json()["idempotency_key"] == headers["Idempotency-Key"]
    assert client.get_balance(user_id) == 70


def test_concurrent_retries_with_one_key_charge_once(
    served: Served, tokens: dict[str, str], client: Credits, user_id: str
) -> None:
    client.add(user_id, 1000, "purchase")
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def send() -> None:
        with httpx.Client(base_url=served.base_url, headers=bearer(tokens["write"])) as one:
            reply = one.post(
                f"/v1/users/{user_id}/deduct",
                json={"amount": 7, "action": "chat_message"},
                headers={"Idempotency-Key": "same-for-all"},
            )
        with lock:
            answers.append(reply.json())

    threads = [threading.Thread(target=send) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == 16 and all(a == answers[0] for a in answers)
    assert client.get_balance(user_id) == 993
    assert len([t for t in client.get_transactions(user_id) if t.type == "deduct"]) == 1


def test_reserve_extend_settle_release_over_http(
    http: httpx.Client, client: Credits, user_id: str
) -> None:
    client.add(user_id, 1000, "purchase")
    held = http.post(
        f"/v1/users/{user_id}/reserve",
        json={"amount": 300, "action": "video_generation", "ttl": 600},
        headers={"Idempotency-Key": f"video-{user_id}"},
    )
    assert held.status_code == 200, held.text
    rid = held.json()["id"]
    assert http.get(f"/v1/users/{user_id}").json()["held"] == 300
    assert http.get(f"/v1/reservations/{rid}").json()["status"] == "open"
    listed = http.get(f"/v1/users/{user_id}/reservations", params={"status": "open"}).json()
    assert [hold["id"] for hold in listed] == [rid]
    extended = http.post(f"/v1/reservations/{rid}/extend", json={"ttl": 3600})
    assert extended.json()["expires_at"] > held.json()["expires_at"]
    settled = http.post(f"/v1/reservations/{rid}/settle", json={"actual_amount": 275})
    assert settled.status_code == 200
    assert (settled.json()["charged"], settled.json()["released"]) == (275, 25)
    repeat = http.post(f"/v1/reservations/{rid}/settle", json={"actual_amount": 1})
    assert repeat.json() == settled.json()
    closed = http.post(f"/v1/reservations/{rid}/release", json={"reason": "too late"})
    assert closed.status_code == 409
    assert closed.json()["error"] == "reservation_closed"
    assert (closed.json()["status"], closed.json()["operation"]) == ("settled", "release")

    other = client.reserve(user_id, 100, "video_generation", ttl=600)
    released = http.post(f"/v1/reservations/{other.id}/release")
    assert released.status_code == 200 and released.json()["charged"] == 0
    assert client.get_account(user_id).balance == 725


def test_unknown_and_malformed_reservations(
    http: httpx.Client, client: Credits, user_id: str
) -> None:
    client.add(user_id, 5, "grant")
    real = client.reserve(user_id, 1, "video", ttl=60)
    unknown = real.id[:-4] + ("0000" if not real.id.endswith("0000") else "1111")
    missing = http.get(f"/v1/reservations/{unknown}")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "not_found",
        "message": f"reservation {unknown!r} not found",
        "reservation_id": unknown,
    }
    malformed = http.post("/v1/reservations/not-a-hold/settle", json={"actual_amount": 1})
    assert malformed.status_code == 422 and malformed.json()["error"] == "invalid_input"
    client.release(real.id)


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 10.5, "action": "chat"},
        {"amount": "10", "action": "chat"},
        {"amount": 0, "action": "chat"},
        {"amount": -5, "action": "chat"},
        {"amount": True, "action": "chat"},
        {"amount": 2**53, "action": "chat"},
        {"amount": 1, "action": ""},
        {"amount": 1, "action": "x" * 129},
        {"amount": 1, "action": "chat", "metadata": [1, 2]},
        {"amount": 1, "action": "chat", "metadata": {"deep": {"a": {"b": {}}}} | {"x": "y" * 9000}},
        {"amount": 1, "action": "chat\x00"},
        {"amount": 1, "action": "chat", "extra": 1},
        {},
    ],
    ids=repr,
)
def test_bad_input_is_422_and_writes_nothing(
    http: httpx.Client, store: Any, user_id: str, body: dict[str, Any]
) -> None:
    before = store_snapshot(store, f"credits:*{user_id}*")
    answer = http.post(f"/v1/users/{user_id}/deduct", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_input"
    assert isinstance(answer.json()["message"], str)
    assert store_snapshot(store, f"credits:*{user_id}*") == before


def test_not_json_and_unknown_routes_answer_in_the_error_shape(http: httpx.Client) -> None:
    garbled = http.post(
        "/v1/users/u/deduct", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert garbled.status_code == 422 and garbled.json()["error"] == "invalid_input"
    nowhere = http.get("/v2/nothing")
    assert nowhere.status_code == 404 and nowhere.json()["error"] == "not_found"
    wrong_method = http.delete("/v1/users/u/deduct")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "method_not_allowed"


def test_a_body_too_large_is_413(http: httpx.Client, user_id: str) -> None:
    big = b'{"amount": 1, "action": "x", "metadata": {"a": "' + b"y" * 70_000 + b'"}}'
    answer = http.post(
        f"/v1/users/{user_id}/deduct", content=big, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413
    assert answer.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        yield b'{"amount": 1, "action": "x", "metadata": {"a": "'
        for _ in range(80):
            yield b"z" * 1000
        yield b'"}}'

    streamed = http.post(
        f"/v1/users/{user_id}/deduct",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert streamed.status_code == 413


def test_a_ledger_bound_is_429(http: httpx.Client, user_id: str) -> None:
    assert (
        http.post(
            f"/v1/users/{user_id}/add", json={"amount": limits.AMOUNT_MAX, "action": "grant"}
        ).status_code
        == 200
    )
    over = http.post(f"/v1/users/{user_id}/add", json={"amount": 1, "action": "grant"})
    assert over.status_code == 429
    assert over.json()["error"] == "limit_exceeded"
    assert (over.json()["limit"], over.json()["requested"]) == ("balance_total", 1)


def test_transactions_page_back_with_next_before(
    http: httpx.Client, client: Credits, user_id: str
) -> None:
    client.add(user_id, 100, "purchase")
    for i in range(6):
        client.deduct(user_id, 1, "chat_message", {"i": i})
    seen: list[str] = []
    before = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3}
        if before:
            params["before"] = before
        page = http.get(f"/v1/users/{user_id}/transactions", params=params).json()
        seen += [tx["tx_id"] for tx in page["data"]]
        before = page["next_before"]
        if not page["has_more"]:
            break
    everything = [tx.tx_id for tx in client.get_transactions(user_id, limit=100)]
    assert seen == everything and len(seen) == 7
    newest = client.get_transactions(user_id, limit=1)[0]
    ranged = http.get(
        f"/v1/users/{user_id}/transactions",
        params={"start_time": newest.timestamp, "end_time": newest.timestamp},
    ).json()
    assert newest.tx_id in [tx["tx_id"] for tx in ranged["data"]]
    assert all(tx["timestamp"] == newest.timestamp for tx in ranged["data"])


def test_an_unreachable_store_is_503_with_retry_after(tokens: dict[str, str]) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with serve(dead) as down:
        health = httpx.get(f"{down.base_url}/healthz")
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        answer = httpx.post(
            f"{down.base_url}/v1/users/u/deduct",
            json={"amount": 1, "action": "chat"},
            headers=bearer(tokens["write"]),
        )
    assert answer.status_code == 503
    assert answer.json()["error"] == "store_unavailable"
    assert answer.headers["retry-after"] == "1"


# --------------------------------------------------------------------------- metrics


def test_metrics_need_a_key_and_show_the_ledger(
    served: Served, tokens: dict[str, str], client: Credits, user_id: str
) -> None:
    assert httpx.get(f"{served.base_url}/metrics").status_code == 401
    client.add(user_id, 100, "purchase")
    hold = client.reserve(user_id, 10, "video_generation", ttl=600)
    httpx.post(
        f"{served.base_url}/v1/users/{user_id}/deduct",
        json={"amount": 1, "action": "chat"},
        headers=bearer(tokens["write"]),
    )
    scraped = httpx.get(f"{served.base_url}/metrics", headers=bearer(tokens["read"]))
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])  # label values may hold spaces
        for line in scraped.text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["credits_holds_open"] >= 1
    assert "credits_sweep_lag_seconds" in values
    assert values['credits_ledger_call_seconds_count{operation="deduct"}'] >= 1
    # the sums the scripts keep, by what happened to the credits, category and action
    assert values['credits_granted_credits_total{action="purchase",category="paid"}'] >= 100
    assert values['credits_charged_credits_total{action="chat",category="paid"}'] >= 1
    client.release(hold.id)


def test_open_holds_and_sweep_lag_read_the_due_indexes(client: Credits, user_id: str) -> None:
    execute = blocking_executor(client.redis)
    before = drive(open_holds(), execute)
    behind = Credits(client.options.url, clock=lambda: time.time() - 120)
    try:
        behind.add(user_id, 10, "grant")
        behind.reserve(user_id, 5, "video_generation", ttl=60)  # expired a minute ago
        assert drive(open_holds(), execute) >= before + 1
        assert drive(sweep_lag_ms(), execute) >= 59_000
    finally:
        behind.close()
    client.get_balance(user_id)  # the user's own upkeep closes the expired hold


def test_metric_series_are_capped() -> None:
    sums = {SumKey("charged", "paid", f"action-{i}"): i for i in range(10)}
    kept = capped(sums, 4)
    assert len(kept) == 4
    assert kept[SumKey("charged", "paid", "_other")] == sum(range(7))
    assert sum(kept.values()) == sum(sums.values())


def test_stats_fields_parse_with_colons_in_actions() -> None:
    assert parse_field("charged:paid:chat_message") == SumKey("charged", "paid", "chat_message")
    assert parse_field("granted:refund:refund:2026") == SumKey("granted", "refund", "refund:2026")
    assert parse_field("nonsense") is None


def test_nothing_is_older_than_the_first_id(
    http: httpx.Client, client: Credits, user_id: str
) -> None:
    """Found by the fuzzer: Redis refuses the range "(0-0", so the ledger answers an empty page."""
    client.add(user_id, 5, "grant")
    assert client.get_transactions(user_id, before="0-0") == []
    page = http.get(f"/v1/users/{user_id}/transactions", params={"before": "0-0", "end_time": 0})
    assert page.status_code == 200
    assert page.json() == {"data": [], "has_more": False, "next_before": None}


def test_a_misspelt_query_parameter_is_refused(http: httpx.Client, user_id: str) -> None:
    answer = http.get(f"/v1/users/{user_id}/transactions", params={"startTime": 1})
    assert answer.status_code == 422
    assert "startTime" in answer.json()["message"]
