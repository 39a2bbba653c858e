"""Plans over real loopback HTTP: allowances, spend limits, alerts, auto top-up, confirmations.

Against the suite's real Redis, through uvicorn, as test_http.py does: scopes,
the error bodies, 404 for what is not set, 422 (and nothing written) for bad
input, the 429 of a spend limit, and the ``Allow`` header of a 405.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from http_rig import Served, bearer, scoped_tokens, serve
from ledger_fixtures import store_snapshot

from credits import Credits
from credits.keys import bucket_tag, user_keys


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
    with scoped_tokens(client, "plans") as made:
        yield made


@pytest.fixture
def http(served: Served, tokens: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base_url, headers=bearer(tokens["write"]), timeout=10) as c:
        yield c


@pytest.fixture
def reader(served: Served, tokens: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base_url, headers=bearer(tokens["read"]), timeout=10) as c:
        yield c


def bucket_snapshot(store: Any, user_id: str) -> dict[Any, Any]:
    return store_snapshot(store, f"credits:{bucket_tag(user_keys(user_id).bucket)}:*")


def test_the_plan_routes_are_in_the_openapi_document(served: Served) -> None:
    schema = httpx.get(f"{served.base_url}/openapi.json").json()
    paths = schema["paths"]
    for kind in ("allowances", "limits", "alerts"):
        assert set(paths[f"/v1/users/{{user_id}}/{kind}"]) == {"get"}
        assert set(paths[f"/v1/users/{{user_id}}/{kind}/{{name}}"]) == {"put", "delete"}
    assert set(paths["/v1/users/{user_id}/auto-topup"]) == {"get", "put", "delete"}
    assert set(paths["/v1/topups/{topup_id}/confirm"]) == {"post"}
    put = paths["/v1/users/{user_id}/limits/{name}"]["put"]
    assert {"401", "403", "422", "429", "503"} <= set(put["responses"])
    assert "204" in paths["/v1/users/{user_id}/alerts/{name}"]["delete"]["responses"]
    body = schema["components"]["schemas"]["AllowanceBody"]["properties"]
    assert body["every"]["enum"] == ["day", "week", "month", "year"]


def test_allowances_set_list_and_remove(
    http: httpx.Client, reader: httpx.Client, client: Credits, user_id: str
) -> None:
    put = http.put(
        f"/v1/users/{user_id}/allowances/pro",
        json={"amount": 500, "every": "month", "rollover_max": 100, "scope": ["chat_message"]},
    )
    assert put.status_code == 200, put.text
    made = put.json()
    assert (made["name"], made["amount"], made["every"], made["granted"]) == (
        "pro",
        500,
        "month",
        500,
    )
    assert made["scope"] == ["chat_message"] and made["period_start"] is not None
    assert client.get_balance(user_id) == 500  # the period holding now is granted at once
    listed = reader.get(f"/v1/users/{user_id}/allowances")
    assert listed.status_code == 200 and listed.json() == [made]
    again = http.put(f"/v1/users/{user_id}/allowances/pro", json={"amount": 500, "every": "month",
                     "rollover_max": 100, "scope": ["chat_message"]})  # fmt: skip
    assert again.json() == made and client.get_balance(user_id) == 500  # PUT twice: one grant
    later = http.put(f"/v1/users/{user_id}/allowances/pro", json={"amount": 800, "every": "month"})
    assert later.json()["next_change"]["amount"] == 800  # from the next period
    assert reader.put(f"/v1/users/{user_id}/allowances/x", json={}).status_code == 403
    assert reader.delete(f"/v1/users/{user_id}/allowances/pro").status_code == 403
    gone = http.delete(f"/v1/users/{user_id}/allowances/pro")
    assert gone.status_code == 204 and gone.content == b""
    assert reader.get(f"/v1/users/{user_id}/allowances").json() == []
    missing = http.delete(f"/v1/users/{user_id}/allowances/pro")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "not_found",
        "message": f"no allowance 'pro' is set for user {user_id!r}",
        "user_id": user_id,
        "name": "pro",
    }


def test_a_spend_limit_answers_429_with_its_numbers(
    http: httpx.Client, reader: httpx.Client, client: Credits, user_id: str
) -> None:
    client.add(user_id, 1000, "purchase")
    put = http.put(f"/v1/users/{user_id}/limits/daily", json={"amount": 100, "every": "day"})
    assert put.status_code == 200, put.text
    assert (put.json()["amount"], put.json()["used"]) == (100, 0)
    assert put.json()["window_end"] - put.json()["window_start"] == 86_400_000
    spent = http.post(f"/v1/users/{user_id}/deduct", json={"amount": 70, "action": "chat"})
    assert spent.status_code == 200
    over = http.post(f"/v1/users/{user_id}/deduct", json={"amount": 40, "action": "chat"})
    assert over.status_code == 429
    assert over.json() | {"message": ""} == {
        "error": "limit_exceeded", "message": "", "limit": "daily", "amount": 100,
        "used": 70, "requested": 40,
    }  # fmt: skip
    [shown] = reader.get(f"/v1/users/{user_id}/limits").json()
    assert (shown["name"], shown["used"], shown["amount"]) == ("daily", 70, 100)
    assert http.delete(f"/v1/users/{user_id}/limits/daily").status_code == 204
    assert http.post(
        f"/v1/users/{user_id}/deduct", json={"amount": 40, "action": "chat"}
    ).is_success
    assert http.delete(f"/v1/users/{user_id}/limits/daily").status_code == 404


def test_alerts_show_whether_the_balance_is_below(
    http: httpx.Client, reader: httpx.Client, client: Credits, user_id: str
) -> None:
    client.add(user_id, 300, "purchase")
    put = http.put(f"/v1/users/{user_id}/alerts/low", json={"below": 100})
    assert put.status_code == 200 and put.json()["triggered"] is False
    client.deduct(user_id, 250, "chat")
    [low] = reader.get(f"/v1/users/{user_id}/alerts").json()
    assert (low["name"], low["below"], low["triggered"]) == ("low", 100, True)
    assert http.delete(f"/v1/users/{user_id}/alerts/low").status_code == 204
    assert http.delete(f"/v1/users/{user_id}/alerts/low").status_code == 404


def test_auto_top_up_and_its_confirmation_once_per_id(
    http: httpx.Client, reader: httpx.Client, client: Credits, user_id: str
) -> None:
    client.add(user_id, 500, "purchase")
    absent = reader.get(f"/v1/users/{user_id}/auto-topup")
    assert absent.status_code == 404
    assert absent.json()["error"] == "not_found" and absent.json()["user_id"] == user_id
    put = http.put(f"/v1/users/{user_id}/auto-topup", json={"below": 100, "amount": 1000})
    assert put.status_code == 200, put.text
    assert (put.json()["enabled"], put.json()["open_topup_id"]) == (True, None)
    client.deduct(user_id, 450, "chat")  # 50: below, a request is made
    state = reader.get(f"/v1/users/{user_id}/auto-topup").json()
    topup_id = state["open_topup_id"]
    assert topup_id and state["open_amount"] == 1000
    assert reader.post(f"/v1/topups/{topup_id}/confirm", json={"paid": True}).status_code == 403
    paid = http.post(f"/v1/topups/{topup_id}/confirm", json={"paid": True})
    assert paid.status_code == 200, paid.text
    assert (paid.json()["paid"], paid.json()["amount"], paid.json()["balance"]) == (
        True,
        1000,
        1050,
    )
    repeat = http.post(f"/v1/topups/{topup_id}/confirm", json={"paid": False})
    assert repeat.json() == paid.json()  # the first answer, for every repeat
    assert client.get_balance(user_id) == 1050
    prefix, local = topup_id.rsplit(":", 1)
    ms, seq = local.split("-")
    unknown = f"{prefix}:{ms}-{int(seq) + 1}"
    missing = http.post(f"/v1/topups/{unknown}/confirm", json={"paid": True})
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found" and missing.json()["topup_id"] == unknown
    malformed = http.post("/v1/topups/top:nope/confirm", json={"paid": True})
    assert malformed.status_code == 422 and malformed.json()["error"] == "invalid_input"
    assert http.delete(f"/v1/users/{user_id}/auto-topup").status_code == 204
    assert http.delete(f"/v1/users/{user_id}/auto-topup").status_code == 404
    assert reader.get(f"/v1/users/{user_id}/auto-topup").status_code == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("allowances/pro", {"amount": 10, "every": "fortnight"}),
        ("allowances/pro", {"amount": 10.5, "every": "month"}),
        ("allowances/pro", {"amount": 10, "every": "month", "priority": 101}),
        ("allowances/pro", {"amount": 10, "every": "month", "scope": []}),
        ("allowances/pro", {"amount": 10, "every": "month", "effective": "later"}),
        ("allowances/pro", {"amount": 10, "every": "month", "extra": 1}),
        ("allowances/not%20ok", {"amount": 10, "every": "month"}),
        ("allowances/" + "n" * 65, {"amount": 10, "every": "month"}),
        ("limits/daily", {"amount": 0, "every": "day"}),
        ("limits/daily", {"amount": 10, "every": "year"}),
        ("alerts/low", {"below": "100"}),
        ("alerts/low", {}),
        ("auto-topup", {"below": 100}),
        ("auto-topup", {"below": 100, "amount": 10, "target": 500}),
        ("auto-topup", {"below": 100, "target": 50}),
        ("auto-topup", {"below": 100, "amount": 10, "max_per_month": 0}),
    ],
    ids=repr,
)
def test_bad_plan_input_is_422_and_writes_nothing(
    http: httpx.Client, store: Any, user_id: str, path: str, body: dict[str, Any]
) -> None:
    before = bucket_snapshot(store, user_id)
    answer = http.put(f"/v1/users/{user_id}/{path}", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_input"
    assert bucket_snapshot(store, user_id) == before


def test_bad_confirmations_are_422_and_write_nothing(
    http: httpx.Client, client: Credits, store: Any, user_id: str
) -> None:
    client.add(user_id, 150, "purchase")
    client.set_auto_topup(user_id, below=100, amount=700)
    client.deduct(user_id, 100, "chat")
    found = client.get_auto_topup(user_id)
    assert found is not None and found.open_topup_id is not None
    before = bucket_snapshot(store, user_id)
    for body in (
        {"paid": "yes"},
        {"paid": 1},
        {},
        {"paid": True, "amount": 0},
        {"paid": True, "x": 1},
    ):
        answer = http.post(f"/v1/topups/{found.open_topup_id}/confirm", json=body)
        assert answer.status_code == 422, (body, answer.text)
    assert bucket_snapshot(store, user_id) == before


def test_a_405_names_every_method_of_the_path(http: httpx.Client) -> None:
    wrong = http.post("/v1/users/u/allowances/pro", json={})
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert wrong.headers["allow"] == "DELETE, PUT"
    assert http.patch("/v1/users/u/auto-topup").headers["allow"] == "DELETE, GET, PUT"
    assert http.delete("/v1/users/u/limits").headers["allow"] == "GET"
    assert http.get("/v1/topups/t/confirm").headers["allow"] == "POST"
    assert http.delete("/v1/users/u/deduct").headers["allow"] == "POST"  # as before


def test_unknown_query_parameters_are_refused(http: httpx.Client, user_id: str) -> None:
    answer = http.get(f"/v1/users/{user_id}/allowances", params={"name": "pro"})
    assert answer.status_code == 422 and "name" in answer.json()["message"]
