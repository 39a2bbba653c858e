"""A period boundary is boring: many callers and the beat's task race, one grant wins.

The allowances are set by a client whose clock runs a day behind, so by the
server's clock (which the worker and the racing callers use) the next period
has already begun when the race starts: nobody waits for a boundary.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from credits import Credits
from credits.tasks import renew_allowances

RESULT_TIMEOUT_S = 30.0
USERS = 12
CALLERS = 6
DAY_S = 86_400


def allowance_grants(client: Credits, user: str) -> list[int]:
    return [tx.amount for tx in client.get_transactions(user, limit=1000) if tx.type == "allowance"]


def test_callers_and_the_beat_racing_at_a_boundary_grant_each_period_once(
    tasks_app: Any, workers: Any, redis_url: str, unique_user: Any
) -> None:
    users = [unique_user("boundary") for _ in range(USERS)]
    with Credits(redis_url, clock=lambda: time.time() - DAY_S - 5) as behind:
        for user in users:
            behind.set_allowance(user, "daily", 100, every="day", rollover_max=30)
            behind.deduct(user, 10, "chat_message")
    worker = workers.start(concurrency=2)
    results = [renew_allowances.apply_async(queue=worker.queue) for _ in range(3)]
    errors: list[BaseException] = []

    def caller(index: int) -> None:
        try:
            with Credits(redis_url) as client:
                for round_ in range(3):
                    for user in users[index % 2 :: 2] if round_ % 2 else users:
                        client.get_balance(user)
                        client.deduct(user, 1, "chat_message")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    renewed = sum(r.get(timeout=RESULT_TIMEOUT_S)["renewed"] for r in results)
    assert errors == []
    with Credits(redis_url) as client:
        for user in users:
            assert allowance_grants(client, user) == [100, 100]  # yesterday's and today's, once
            rollovers = [tx for tx in client.get_transactions(user) if tx.type == "rollover"]
            assert [tx.amount for tx in rollovers] == [30]
            deducted = sum(
                tx.amount for tx in client.get_transactions(user, limit=1000) if tx.type == "deduct"
            )
            assert client.get_balance(user) == 100 + 30 - (deducted - 10)
            assert client.verify_balance(user).valid
    assert renewed <= USERS * 3  # whatever the task did was part of the once-per-period total
