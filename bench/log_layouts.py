"""Stream or sorted set for the per-user event log? Measured, not assumed.

Run: ``python -m bench.log_layouts [events]``. Starts its own throwaway
redis-server, writes the same events both ways (the Stream with the exact
fields ``prelude.lua`` writes; the sorted set with the seed's JSON members
scored by time) and prints memory per event and the median latency of the
two reads the ledger serves: latest 50, and 50 in a time range. The README's
"Event log" section quotes one run of this.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from credits.redis_server import RedisServer

START_MS = 1_800_000_000_000
PIPELINE_EVERY = 5000
READ_ROUNDS = 2000


def _median_us(read: Callable[[], object]) -> float:
    samples = []
    for _ in range(READ_ROUNDS):
        began = time.perf_counter()
        read()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1e6


def main(events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, RedisServer(tmp) as server:
        client = server.client(decode_responses=True)

        def used() -> int:
            return int(client.info("memory")["used_memory"])

        pipe = client.pipeline(transaction=False)
        before = used()
        for i in range(events):
            fields = {
                "t": "deduct",
                "a": "10",
                "b": "-10",
                "h": "0",
                "B": str(10**9 - 10 * i),
                "c": "chat_message",
                "m": "",
                "r": "",
                "x": "",
            }
            pipe.xadd("log:stream", fields, id=f"{START_MS + i}-0")  # type: ignore[arg-type]
            if i % PIPELINE_EVERY == PIPELINE_EVERY - 1:
                pipe.execute()
        pipe.execute()
        stream_bytes = (used() - before) / events

        before = used()
        for i in range(events):
            member = json.dumps(
                {
                    "id": f"{START_MS + i}-0",
                    "type": "deduct",
                    "amount": 10,
                    "balance_delta": -10,
                    "held_delta": 0,
                    "balance_after": 10**9 - 10 * i,
                    "action": "chat_message",
                    "metadata": {},
                },
                separators=(",", ":"),
            )
            pipe.zadd("log:zset", {member: START_MS + i})
            if i % PIPELINE_EVERY == PIPELINE_EVERY - 1:
                pipe.execute()
        pipe.execute()
        zset_bytes = (used() - before) / events

        middle = START_MS + events // 2
        rows = [
            (
                "stream",
                stream_bytes,
                _median_us(lambda: client.xrevrange("log:stream", "+", "-", count=50)),
                _median_us(
                    lambda: client.xrevrange("log:stream", str(middle + 49), str(middle), count=50)
                ),
            ),
            (
                "sorted set",
                zset_bytes,
                _median_us(lambda: client.zrevrange("log:zset", 0, 49)),
                _median_us(
                    lambda: client.zrevrangebyscore(
                        "log:zset", middle + 49, middle, start=0, num=50
                    )
                ),
            ),
        ]
        print(f"{events} events")
        print(f"{'layout':<12}{'B/event':>10}{'latest 50 (us)':>18}{'range 50 (us)':>16}")
        for name, per_event, latest_us, range_us in rows:
            print(f"{name:<12}{per_event:>10.1f}{latest_us:>18.0f}{range_us:>16.0f}")
        client.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
