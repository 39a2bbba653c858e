"""The auto top-up loop, end to end: ledger → webhook delivery → example receiver → ledger.

Nothing is called by hand between the deduct and the grant: a deduct crosses
below the threshold, the script writes ``topup.requested``, a real Celery
worker's ``deliver_events`` POSTs it (signed) over loopback to
``examples/webhook_receiver.py`` served by uvicorn, which charges its stand-in
card and calls ``confirm_topup``. The test plays beat (the dispatcher tick
every ``DELIVERY_TICK_S``), and waits by polling with deadlines.

An ASGI wrapper in front of the receiver records every delivery and can lose
the answer to one (after the receiver handled it, as a dropped connection
would): the ledger then delivers the same event again, the receiver handles it
again, and the card is charged once and the credits granted once, because both
are keyed by the ``topup_id``.

The module has a Redis of its own, as the webhook worker tests do: a worker
delivers to every endpoint of its store.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from http_rig import serve_app
from standardwebhooks import Webhook
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from worker_rig import REPO_ROOT, DeliveryBeat, Workers

from credits import Credits, LedgerEvent
from credits.keys import topup_id, user_keys
from credits.redis_server import RedisServer
from credits.waiting import wait_until

pytestmark = pytest.mark.system  # a worker, a receiver and a Redis of its own

LEDGER_SECRET = "whsec_" + base64.b64encode(b"ledger-endpoint-secret-32-bytes!").decode()
PROVIDER_SECRET = "whsec_" + base64.b64encode(b"provider-secret-of-32-bytes-long").decode()
RETRIES = ",".join(["0.3"] * 20)  # a failed delivery is tried again 0.3 s later
LOOP_TIMEOUT_S = 30.0


def load_example() -> ModuleType:
    path = REPO_ROOT / "examples" / "webhook_receiver.py"
    spec = importlib.util.spec_from_file_location("webhook_receiver_topup_loop", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    user_id: str
    type: str
    data: dict[str, Any]
    status: int  # what the ledger's worker got
    answer: dict[str, Any]  # what the receiver answered (lost, for a lost answer)


class Recorder:
    """In front of the receiver: records each ledger webhook; loses chosen first answers."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self.lose_first_answer_of: set[str] = set()  # users whose first top-up answer is lost

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/webhooks/credits":
            await self._app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        event = json.loads(body)
        with self._lock:
            lose = (
                event["type"] == "topup.requested" and event["user_id"] in self.lose_first_answer_of
            )
            if lose:
                self.lose_first_answer_of.discard(event["user_id"])
        given = False

        async def replay() -> Message:
            nonlocal given
            if given:
                return await receive()
            given = True
            return {"type": "http.request", "body": body, "more_body": False}

        status = 0
        answer = b""

        async def keep(message: Message) -> None:
            nonlocal status, answer
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                answer += message.get("body", b"")
            if not lose:
                await send(message)

        await self._app(scope, replay, keep)
        if lose:  # the receiver did its work; its answer never reaches the ledger
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        delivery = Delivery(
            webhook_id=headers.get("webhook-id", ""),
            user_id=event["user_id"],
            type=event["type"],
            data=event["data"],
            status=500 if lose else status,
            answer=json.loads(answer) if answer else {},
        )
        with self._lock:
            self._deliveries.append(delivery)

    def of(self, user_id: str, kind: str | None = None) -> list[Delivery]:
        with self._lock:
            return [
                d
                for d in self._deliveries
                if d.user_id == user_id and (kind is None or d.type == kind)
            ]


@dataclass(frozen=True)
class Loop:
    ledger: Credits
    payments: Any  # examples.webhook_receiver.StandInPayments
    recorder: Recorder
    base_url: str


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    root: Path = tmp_path_factory.mktemp("topup-loop")
    (root / "workers").mkdir()
    with (
        pytest.MonkeyPatch.context() as patch,
        RedisServer(root / "redis") as server,
        Credits(server.url) as ledger,
    ):
        patch.setenv("CREDITS_WEBHOOK_ALLOW_PRIVATE", "1")  # the receiver is on loopback
        example = load_example()
        payments = example.StandInPayments()
        receiver = example.create_app(
            ledger,
            example.StandardWebhookVerifier(PROVIDER_SECRET, ledger.redis),
            ledger_verifier=example.StandardWebhookVerifier(LEDGER_SECRET, ledger.redis),
            payments=payments,
        )
        recorder = Recorder(receiver)
        workers = Workers(server.url, root / "workers")
        try:
            with serve_app(recorder) as served:
                ledger.add_webhook(
                    f"{served.base_url}/webhooks/credits", events=["topup.*"], secret=LEDGER_SECRET
                )
                worker = workers.start(
                    env={
                        "CREDITS_WEBHOOK_ALLOW_PRIVATE": "1",
                        "CREDITS_WEBHOOK_TIMEOUT_S": "5",
                        "CREDITS_WEBHOOK_RETRY_S": RETRIES,
                    }
                )
                with DeliveryBeat(server.url, worker.queue):
                    yield Loop(ledger, payments, recorder, served.base_url)
        finally:
            workers.stop_all()


def test_a_top_up_is_charged_and_granted_once_through_a_redelivery(
    loop: Loop, unique_user: Any
) -> None:
    ledger, user = loop.ledger, unique_user("topup")
    ledger.add(user, 500, "purchase")
    ledger.set_auto_topup(user, below=100, amount=1000)
    loop.recorder.lose_first_answer_of.add(user)
    ledger.deduct(user, 450, "chat_message")  # 50: crosses below, topup.requested is written

    wait_until(
        lambda: any(d.status == 200 for d in loop.recorder.of(user, "topup.requested")),
        timeout_s=LOOP_TIMEOUT_S,
        what="the top-up delivered again and answered",
    )
    first, again = loop.recorder.of(user, "topup.requested")
    assert first.webhook_id == again.webhook_id  # the same event, delivered twice
    assert (first.status, again.status) == (500, 200)
    topup_id = first.data["topup_id"]
    # Both deliveries were handled; the second got the first confirmation back.
    paid = {"status": "paid", "topup_id": topup_id, "balance": 1050}
    assert first.answer == again.answer == paid
    assert ledger.get_balance(user) == 1050
    granted = [tx for tx in ledger.get_transactions(user) if tx.action == "topup"]
    assert [(tx.type, tx.amount) for tx in granted] == [("add", 1000)]
    [charge] = [c for c in loop.payments.charges if c.user_id == user]
    assert (charge.key, charge.amount, charge.paid, charge.refunded) == (
        topup_id,
        1000,
        True,
        False,
    )
    state = ledger.get_auto_topup(user)
    assert state is not None
    assert (state.enabled, state.open_topup_id, state.failures) == (True, None, 0)
    assert ledger.verify_balance(user).valid


def test_three_declines_switch_auto_top_up_off(loop: Loop, unique_user: Any) -> None:
    ledger, user = loop.ledger, unique_user("declined")
    loop.payments.declined_users.add(user)
    ledger.add(user, 200, "purchase")
    ledger.set_auto_topup(user, below=100, amount=500)
    for attempt in (1, 2, 3):
        ledger.deduct(user, 150, "chat_message")  # 50: below, a request

        def declined(count: int = attempt) -> bool:
            state = ledger.get_auto_topup(user)
            return state is not None and state.failures == count and state.open_topup_id is None

        wait_until(declined, timeout_s=LOOP_TIMEOUT_S, what=f"decline {attempt} confirmed")
        ledger.add(user, 150, "purchase")  # back above, for the next crossing

    wait_until(
        lambda: bool(loop.recorder.of(user, "topup.disabled")),
        timeout_s=LOOP_TIMEOUT_S,
        what="topup.disabled delivered",
    )
    state = ledger.get_auto_topup(user)
    assert state is not None and (state.enabled, state.failures) == (False, 3)
    kinds = [d.type for d in loop.recorder.of(user)]
    assert kinds == ["topup.requested"] * 3 + ["topup.disabled"]
    [disabled] = loop.recorder.of(user, "topup.disabled")
    assert disabled.data["reason"] == "payment_failed" and disabled.answer["status"] == "noted"
    answers = [d.answer["status"] for d in loop.recorder.of(user, "topup.requested")]
    assert answers == ["declined"] * 3
    charges = [c for c in loop.payments.charges if c.user_id == user]
    assert len(charges) == 3 and not any(c.paid for c in charges)
    assert not [tx for tx in ledger.get_transactions(user) if tx.action == "topup"]
    ledger.deduct(user, 150, "chat_message")  # crosses again: it is off, nothing is asked
    after = ledger.get_auto_topup(user)
    assert after is not None and after.open_topup_id is None


def post_signed(loop: Loop, event: LedgerEvent, secret: str = LEDGER_SECRET) -> httpx.Response:
    body = event.model_dump_json()
    now = datetime.now(tz=UTC)
    headers = {
        "webhook-id": event.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(event.id, now, body),
        "content-type": "application/json",
    }
    return httpx.post(f"{loop.base_url}/webhooks/credits", content=body, headers=headers)


def test_the_receiver_refuses_forgeries_ignores_others_and_refunds_stale_requests(
    loop: Loop, unique_user: Any
) -> None:
    user = unique_user("stale")
    stale = topup_id(user_keys(user), "1-1")  # well formed, never open
    requested = LedgerEvent(
        id="evt_1_1-1", type="topup.requested", created_at=1, user_id=user,
        data={"topup_id": stale, "amount": 300, "balance": 5, "below": 10},
    )  # fmt: skip
    forged = post_signed(loop, requested, secret=PROVIDER_SECRET)
    assert forged.status_code == 401
    assert not loop.payments.charges or all(c.user_id != user for c in loop.payments.charges)
    answer = post_signed(loop, requested)
    assert answer.status_code == 200 and answer.json() == {"status": "stale", "topup_id": stale}
    [charge] = [c for c in loop.payments.charges if c.user_id == user]
    assert charge.paid and charge.refunded  # charged, then given back: the ledger had no request
    other = requested.model_copy(update={"id": "evt_1_1-2", "type": "balance.below", "data": {}})
    ignored = post_signed(loop, other)
    assert ignored.status_code == 200 and ignored.json()["status"] == "ignored"
