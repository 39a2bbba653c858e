"""Reconcile walks every registry to its end, however the users fall into buckets."""

from __future__ import annotations

import itertools
from pathlib import Path

from credits import Credits
from credits.keys import bucket_of, user_keys
from credits.redis_server import RedisServer


def _users_in_one_bucket(count: int) -> list[str]:
    names = (f"crowded-{i}" for i in itertools.count())
    target = bucket_of("crowded-0")
    return list(itertools.islice((n for n in names if bucket_of(n) == target), count))


def test_reconcile_scans_a_crowded_bucket_in_many_rounds(tmp_path: Path) -> None:
    crowded = _users_in_one_bucket(23)
    spread = [f"spread-{i}" for i in range(40)]
    seen: list[int] = []
    with RedisServer(tmp_path) as server, Credits(server.url) as client:
        for user in crowded + spread:
            client.initialize_user(user, 50)
        for user in crowded[::4] + spread[::10]:
            client.redis.hset(user_keys(user).account, "bal", 7)  # corrupt behind its back
        report = client.reconcile(batch_size=5, progress=lambda checked, total: seen.append(total))
        assert report.checked == len(crowded) + len(spread)
        assert report.invalid == len(crowded[::4]) + len(spread[::10])
        assert report.fixed == 0
        assert set(seen) == {len(crowded) + len(spread)}
        fixed = client.reconcile(fix=True, batch_size=5)
        assert (fixed.invalid, fixed.fixed) == (report.invalid, report.invalid)
        assert client.reconcile().invalid == 0
        assert all(client.get_balance(user) == 50 for user in crowded + spread)


def test_reconcile_of_an_empty_store(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server, Credits(server.url) as client:
        assert client.reconcile(fix=True).summary() == {"checked": 0, "invalid": 0, "fixed": 0}
