"""Concurrent writers on one user never overdraw, and the log accounts for every credit."""

from __future__ import annotations

import asyncio
import random
import threading

from ledger_fixtures import BOTH_BACKENDS, Backend, Clock

from credits.errors import InsufficientCreditsError

THREADS = 8
DEDUCTS_PER_THREAD = 250
START_BALANCE = 2000  # less than the ~4000 the threads try to take


@BOTH_BACKENDS
def test_threads_never_overdraw(backend: Backend, user_id: str) -> None:
    with backend.credits() as setup:
        setup.initialize_user(user_id, START_BALANCE)
    charged: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        with backend.credits() as client:
            barrier.wait()
            for _ in range(DEDUCTS_PER_THREAD):
                amount = rng.randint(1, 3)
                try:
                    result = client.deduct(user_id, amount, "chat_message")
                except InsufficientCreditsError as error:
                    with lock:
                        refused.append(error.available)
                else:
                    assert result.balance >= 0
                    with lock:
                        charged.append(amount)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with backend.credits() as check:
        balance = check.get_balance(user_id)
        assert balance == START_BALANCE - sum(charged)
        assert 0 <= balance < 3
        assert refused, "the threads asked for more than the balance"
        txs = check.get_transactions(user_id, limit=1000)
        deducts = [tx for tx in txs if tx.type == "deduct"]
        assert len(deducts) == len(charged)
        assert sorted(tx.amount for tx in deducts) == sorted(charged)
        assert all(tx.balance_after >= 0 for tx in txs)
        assert check.verify_balance(user_id).valid


@BOTH_BACKENDS
def test_fifty_concurrent_async_deducts(backend: Backend, user_id: str, clock: Clock) -> None:
    async def run() -> tuple[list[object], int, bool]:
        async with backend.async_credits(clock=clock) as client:
            await client.initialize_user(user_id, 400)
            outcomes = await asyncio.gather(
                *(client.deduct(user_id, 10, "chat_message") for _ in range(50)),
                return_exceptions=True,
            )
            verified = await client.verify_balance(user_id)
            return list(outcomes), await client.get_balance(user_id), verified.valid

    outcomes, balance, valid = asyncio.run(run())
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 40
    assert len(lost) == 10
    assert all(isinstance(o, InsufficientCreditsError) for o in lost)
    assert balance == 0
    assert valid
    assert sorted(r.balance for r in won) == list(range(0, 400, 10))  # type: ignore[attr-defined]
