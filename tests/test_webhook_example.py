"""examples/webhook_receiver.py with FastAPI's test client and a real worker.

Signatures are made with the ``standardwebhooks`` reference library, so the
receiver is checked against the scheme, not against itself.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest
from celery.result import AsyncResult
from fastapi.testclient import TestClient
from standardwebhooks import Webhook
from worker_rig import REPO_ROOT

from credits import Credits

pytestmark = pytest.mark.system  # starts its own servers or processes

SECRET = "whsec_" + base64.b64encode(b"credits-example-secret-32-bytes!").decode()
RESULT_TIMEOUT_S = 30.0


def load_example() -> ModuleType:
    path = REPO_ROOT / "examples" / "webhook_receiver.py"
    spec = importlib.util.spec_from_file_location("webhook_receiver_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example()


@pytest.fixture
def ledger(redis_url: str) -> Iterator[Credits]:
    with Credits(redis_url) as client:
        yield client


@pytest.fixture
def http(example, ledger, tasks_app, workers) -> Iterator[TestClient]:
    workers.start()
    verifier = example.StandardWebhookVerifier(SECRET, ledger.redis)
    app = example.create_app(ledger, verifier, queue=workers.queue)
    with TestClient(app) as client:
        yield client


def signed(payload: dict, *, webhook_id: str, at: datetime | None = None) -> tuple[bytes, dict]:
    body = json.dumps(payload)
    when = at or datetime.now(tz=UTC)
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(webhook_id, when, body),
        "content-type": "application/json",
    }
    return body.encode(), headers


def post_webhook(http: TestClient, body: bytes, headers: dict):
    return http.post("/webhooks/provider", content=body, headers=headers)


def test_a_signed_completion_webhook_settles_the_job(http, ledger, user_id) -> None:
    ledger.initialize_user(user_id, 1000)
    started = http.post("/jobs/video", json={"user_id": user_id, "seconds": 30})
    assert started.status_code == 201, started.text
    rid = started.json()["reservation_id"]
    assert started.json()["held"] == 300

    body, headers = signed(
        {"type": "job.completed", "reservation_id": rid, "usage": 21.5},
        webhook_id=f"msg_{user_id}",
    )
    answer = post_webhook(http, body, headers)

    assert answer.status_code == 202, answer.text
    settlement = AsyncResult(answer.json()["task_id"]).get(timeout=RESULT_TIMEOUT_S)
    assert (settlement["charged"], settlement["released"]) == (215, 85)
    assert ledger.get_account(user_id).balance == 785


def test_a_failed_job_webhook_releases_the_hold(http, ledger, user_id) -> None:
    ledger.initialize_user(user_id, 1000)
    rid = http.post("/jobs/video", json={"user_id": user_id, "seconds": 10}).json()[
        "reservation_id"
    ]
    body, headers = signed(
        {"type": "job.failed", "reservation_id": rid, "error": "provider timeout"},
        webhook_id=f"msg_fail_{user_id}",
    )
    answer = post_webhook(http, body, headers)
    assert answer.status_code == 202, answer.text
    AsyncResult(answer.json()["task_id"]).get(timeout=RESULT_TIMEOUT_S)
    assert ledger.get_reservation(rid).status == "released"
    assert ledger.get_account(user_id).balance == 1000


def test_bad_tampered_stale_and_replayed_webhooks_are_refused(http, ledger, user_id) -> None:
    ledger.initialize_user(user_id, 1000)
    rid = http.post("/jobs/video", json={"user_id": user_id, "seconds": 30}).json()[
        "reservation_id"
    ]
    payload = {"type": "job.completed", "reservation_id": rid, "usage": 30}

    body, headers = signed(payload, webhook_id=f"msg_bad_{user_id}")
    forged = {**headers, "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}
    assert post_webhook(http, body, forged).status_code == 401
    tampered = body.replace(b"30", b"1")
    assert post_webhook(http, tampered, headers).status_code == 401
    missing = {k: v for k, v in headers.items() if k != "webhook-signature"}
    assert post_webhook(http, body, missing).status_code == 401
    old = datetime.now(tz=UTC) - timedelta(minutes=10)
    stale_body, stale = signed(payload, webhook_id=f"msg_old_{user_id}", at=old)
    assert post_webhook(http, stale_body, stale).status_code == 401

    assert ledger.get_reservation(rid).status == "open"  # none of them reached the ledger

    first = post_webhook(http, body, headers)
    assert first.status_code == 202, first.text
    AsyncResult(first.json()["task_id"]).get(timeout=RESULT_TIMEOUT_S)
    assert ledger.get_account(user_id).balance == 700


def test_a_redelivered_webhook_is_answered_2xx_and_charged_once(http, ledger, user_id) -> None:
    """Providers retry every non-2xx and disable endpoints that keep failing: a replay is 200."""
    ledger.initialize_user(user_id, 1000)
    rid = http.post("/jobs/video", json={"user_id": user_id, "seconds": 30}).json()[
        "reservation_id"
    ]
    body, headers = signed(
        {"type": "job.completed", "reservation_id": rid, "usage": 30},
        webhook_id=f"msg_again_{user_id}",
    )
    first = post_webhook(http, body, headers)
    assert first.status_code == 202, first.text
    replay = post_webhook(http, body, headers)
    assert replay.status_code == 200
    assert replay.json() == {"status": "already_accepted", "webhook_id": f"msg_again_{user_id}"}
    AsyncResult(first.json()["task_id"]).get(timeout=RESULT_TIMEOUT_S)
    assert ledger.get_account(user_id).balance == 700


def test_a_malformed_reservation_id_is_refused(http, ledger, user_id) -> None:
    body, headers = signed(
        {"type": "job.completed", "reservation_id": "rsv:oops", "usage": 3},
        webhook_id=f"msg_malformed_{user_id}",
    )
    answer = post_webhook(http, body, headers)
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_reservation_id"


def test_starting_a_job_without_the_credits_is_402(http, ledger, user_id) -> None:
    ledger.initialize_user(user_id, 100)
    answer = http.post("/jobs/video", json={"user_id": user_id, "seconds": 30})
    assert answer.status_code == 402
    assert answer.json() == {"error": "insufficient_credits", "required": 300, "available": 100}
    assert ledger.get_account(user_id).held == 0


def test_the_receiver_matches_the_reference_signer(example, ledger) -> None:
    verifier = example.StandardWebhookVerifier(SECRET, ledger.redis)
    now = int(time.time())
    mine = verifier.sign("msg_1", now, b'{"a":1}')
    theirs = Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(now, tz=UTC), '{"a":1}')
    assert mine == theirs
