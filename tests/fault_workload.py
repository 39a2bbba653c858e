"""A concurrent ledger workload that rides through store faults, and its exactly-once audit.

Used by test_durability.py (kill -9 of redis-server) and test_script_cache.py
(SCRIPT FLUSH, restarts). Writers are threads with a blocking ``Credits`` each,
plus one thread running an asyncio loop with several tasks on one shared
``AsyncCredits``. They deduct, add, reserve, settle and ``deduct_many`` on a
few shared users, every write under an idempotency key (settles under their
reservation id) and with ``{"op": key}`` in its metadata, so every event in a
user's log names the operation that wrote it.

A writer retries an operation that raised :class:`StoreUnavailableError` with
the same key until it succeeds, the way a Celery task or a careful caller does;
any other error is recorded as a failure. Afterwards :func:`audit` checks, from
the raw log, that every operation left exactly one event, that every
acknowledged ``tx_id`` is in the log with its operation's name on it, and that
the cached balance and held are what the operations add up to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.cluster

from credits import AsyncCredits, BulkItem, Credits, Reservation, Settlement, TxResult
from credits.errors import StoreUnavailableError
from credits.keys import user_keys
from credits.sentinel import blocking_primary, is_sentinel_url

START_CREDITS = 10**9  # never runs out: every deduct and reserve is allowed
SOCKET_TIMEOUT_S = 2.0
RETRY_PAUSE_S = 0.01
RETRY_DEADLINE_S = 30.0
BULK_ITEMS = 5


@dataclass(frozen=True)
class Op:
    key: str
    kind: str  # deduct | add | reserve | settle | bulk
    user: str
    amount: int
    rid: str = ""  # settle: the hold
    items: tuple[Op, ...] = ()  # bulk: its deducts

    def metadata(self) -> dict[str, str]:
        return {"op": self.key}


@dataclass
class Book:
    """What the writers were told, shared between threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[str, tuple[Op, str]] = field(default_factory=dict)  # key -> (op, tx_id)
    holds: dict[str, tuple[str, int]] = field(default_factory=dict)  # rid -> (user, amount)
    settled: dict[str, int] = field(default_factory=dict)  # rid -> actual
    retried: Counter[str] = field(default_factory=Counter)  # ops that needed a retry, by kind
    unavailable_errors: int = 0  # StoreUnavailableError seen, retries included
    failures: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def record(self, op: Op, result: Any) -> bool:
        """Note an operation's result; False when a bulk item must be retried."""
        with self.lock:
            if op.kind == "bulk":
                if any(isinstance(r, StoreUnavailableError) for r in result):
                    return False
                for item, item_result in zip(op.items, result, strict=True):
                    if not isinstance(item_result, TxResult):
                        self.failures.append(f"{item.key}: {item_result!r}")
                        continue
                    self.acked[item.key] = (item, item_result.tx_id)
                return True
            if op.kind == "reserve":
                assert isinstance(result, Reservation)
                self.holds[result.id] = (op.user, op.amount)
            if op.kind == "settle":
                assert isinstance(result, Settlement)
                self.settled[op.rid] = op.amount
            self.acked[op.key] = (op, result.tx_id)
            return True


def invoke(client: Credits | AsyncCredits, op: Op) -> Any:
    """The client call for ``op`` (a coroutine for the async client)."""
    meta = op.metadata()
    if op.kind == "deduct":
        return client.deduct(op.user, op.amount, "chat_message", meta, idempotency_key=op.key)
    if op.kind == "add":
        return client.add(op.user, op.amount, "purchase", meta, idempotency_key=op.key)
    if op.kind == "reserve":
        return client.reserve(
            op.user, op.amount, "video_generation", ttl=3600, metadata=meta, idempotency_key=op.key
        )
    if op.kind == "settle":
        return client.settle(op.rid, op.amount, meta)
    items = [
        BulkItem(i.user, i.amount, "chat_message", i.metadata(), idempotency_key=i.key)
        for i in op.items
    ]
    return client.deduct_many(items)


class OpMaker:
    """Random operations of one writer; a writer settles only holds it reserved."""

    def __init__(self, name: str, users: list[str], seed: int) -> None:
        self._name = name
        self._users = users
        self._rng = random.Random(seed)
        self._n = 0
        self.open_holds: list[tuple[str, int, str]] = []  # (rid, amount, user)

    def _key(self) -> str:
        self._n += 1
        return f"{self._name}-{self._n}"

    def next(self) -> Op:
        rng = self._rng
        user = rng.choice(self._users)
        roll = rng.random()
        if roll < 0.15 and self.open_holds:
            rid, amount, owner = self.open_holds.pop(rng.randrange(len(self.open_holds)))
            return Op(self._key(), "settle", owner, rng.randint(0, amount), rid=rid)
        if roll < 0.3:
            return Op(self._key(), "reserve", user, rng.randint(1, 50))
        if roll < 0.4:
            items = tuple(
                Op(self._key(), "deduct", rng.choice(self._users), rng.randint(1, 9))
                for _ in range(BULK_ITEMS)
            )
            return Op(self._key(), "bulk", user, 0, items=items)
        if roll < 0.55:
            return Op(self._key(), "add", user, rng.randint(1, 20))
        return Op(self._key(), "deduct", user, rng.randint(1, 9))

    def done(self, op: Op, result: Any) -> None:
        if op.kind == "reserve":
            self.open_holds.append((result.id, op.amount, op.user))


def _note_retry(book: Book, op: Op, attempts: int) -> None:
    with book.lock:
        book.unavailable_errors += attempts
        if attempts:
            book.retried[op.kind] += 1


def _give_up(book: Book, op: Op, started: float) -> bool:
    if time.monotonic() - started < RETRY_DEADLINE_S:
        return False
    with book.lock:
        book.failures.append(f"{op.key}: still unavailable after {RETRY_DEADLINE_S} s")
    return True


def sync_writer(
    url: str,
    users: list[str],
    book: Book,
    stop: threading.Event,
    name: str,
    cluster: bool,
    options: dict[str, Any] | None = None,
) -> None:
    maker = OpMaker(name, users, seed=zlib.crc32(name.encode()))
    extra = options or {}
    with Credits(url, cluster=cluster, socket_timeout=SOCKET_TIMEOUT_S, **extra) as client:
        while not stop.is_set():
            op = maker.next()
            attempts, started = 0, time.monotonic()
            while True:
                try:
                    result = invoke(client, op)
                except StoreUnavailableError:
                    result = None
                except Exception as exc:
                    with book.lock:
                        book.failures.append(f"{op.key} ({op.kind}): {exc!r}")
                    return
                if result is not None and book.record(op, result):
                    maker.done(op, result)
                    break
                attempts += 1
                if _give_up(book, op, started):
                    return
                time.sleep(RETRY_PAUSE_S)
            _note_retry(book, op, attempts)


async def _async_task(
    client: AsyncCredits, users: list[str], book: Book, stop: threading.Event, name: str
) -> None:
    maker = OpMaker(name, users, seed=zlib.crc32(name.encode()))
    while not stop.is_set():
        op = maker.next()
        attempts, started = 0, time.monotonic()
        while True:
            try:
                result = await invoke(client, op)
            except StoreUnavailableError:
                result = None
            except Exception as exc:
                with book.lock:
                    book.failures.append(f"{op.key} ({op.kind}): {exc!r}")
                return
            if result is not None and book.record(op, result):
                maker.done(op, result)
                break
            attempts += 1
            if _give_up(book, op, started):
                return
            await asyncio.sleep(RETRY_PAUSE_S)
        _note_retry(book, op, attempts)


def async_writers(
    url: str,
    users: list[str],
    book: Book,
    stop: threading.Event,
    name: str,
    tasks: int,
    cluster: bool,
    options: dict[str, Any] | None = None,
) -> None:
    async def run() -> None:
        async with AsyncCredits(
            url, cluster=cluster, socket_timeout=SOCKET_TIMEOUT_S, **(options or {})
        ) as client:
            await asyncio.gather(
                *(_async_task(client, users, book, stop, f"{name}.{i}") for i in range(tasks))
            )

    asyncio.run(run())


@dataclass
class Workload:
    """Writers on ``users`` of ``url``, started by :meth:`start`, stopped by :meth:`stop`."""

    url: str
    users: list[str]
    threads: int = 4
    async_tasks: int = 4
    cluster: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # more client arguments (wait_replicas)
    book: Book = field(default_factory=Book)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Workload:
        with Credits(self.url, cluster=self.cluster, **self.options) as setup:
            for user in self.users:
                setup.initialize_user(user, START_CREDITS)
        run_id = f"w{time.monotonic_ns()}"
        for i in range(self.threads):
            self._threads.append(
                threading.Thread(
                    target=sync_writer,
                    args=(
                        self.url,
                        self.users,
                        self.book,
                        self._stop,
                        f"{run_id}-t{i}",
                        self.cluster,
                        self.options,
                    ),
                )
            )
        self._threads.append(
            threading.Thread(
                target=async_writers,
                args=(
                    self.url,
                    self.users,
                    self.book,
                    self._stop,
                    f"{run_id}-a",
                    self.async_tasks,
                    self.cluster,
                    self.options,
                ),
            )
        )
        for thread in self._threads:
            thread.start()
        return self

    def wait_for(self, acked: int, timeout_s: float = 60.0) -> None:
        """Until the writers have ``acked`` acknowledged operations (or one failed)."""
        deadline = time.monotonic() + timeout_s
        while self.book.count < acked:
            if self.book.failures:
                raise AssertionError(f"writers failed: {self.book.failures[:5]}")
            if not any(t.is_alive() for t in self._threads):
                raise AssertionError("every writer stopped")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.book.count} of {acked} operations after {timeout_s} s")
            time.sleep(0.005)

    def stop(self) -> Book:
        self._stop.set()
        for thread in self._threads:
            thread.join(RETRY_DEADLINE_S + 10)
            assert not thread.is_alive(), "a writer did not stop"
        return self.book


def _log(client: Any, user: str) -> list[tuple[str, dict[str, str]]]:
    entries: list[tuple[str, dict[str, str]]] = []
    start = "-"
    while True:
        chunk = client.xrange(user_keys(user).log, start, "+", count=5000)
        entries += chunk
        if len(chunk) < 5000:
            return entries
        start = f"({chunk[-1][0]}"


def _raw(url: str, cluster: bool) -> Any:
    if is_sentinel_url(url):
        return blocking_primary(url, SOCKET_TIMEOUT_S, decode_responses=True)
    if cluster:
        return redis.cluster.RedisCluster.from_url(url, decode_responses=True)
    return redis.Redis.from_url(url, decode_responses=True)


def audit(url: str, users: list[str], book: Book, *, cluster: bool = False) -> dict[str, int]:
    """Exactly once, durable, and adding up: raises AssertionError with the first difference.

    Returns a few counts for the report (events, retried operations).
    """
    assert not book.failures, book.failures[:10]
    ops_by_key = {key: op for key, (op, _) in book.acked.items()}
    seen: Counter[str] = Counter()
    events_by_id: dict[tuple[str, str], dict[str, str]] = {}
    with _raw(url, cluster) as raw:
        for user in users:
            for entry_id, fields in _log(raw, user):
                events_by_id[(user, entry_id)] = fields
                if fields["t"] == "initialize":
                    continue
                meta = json.loads(fields["m"]) if fields["m"] else {}
                key = meta.get("op")
                assert key in ops_by_key, f"an event no acknowledged op wrote: {user} {fields}"
                assert ops_by_key[key].user == user, (key, user)
                seen[key] += 1
    twice = [key for key, n in seen.items() if n > 1]
    assert not twice, f"applied more than once: {twice[:10]}"
    missing = [key for key in ops_by_key if seen[key] != 1]
    assert not missing, f"acknowledged but not in the log: {missing[:10]}"
    for key, (op, tx_id) in book.acked.items():
        fields = events_by_id.get((op.user, tx_id))
        assert fields is not None, f"tx {tx_id} of {key} is not in {op.user}'s log"
        assert json.loads(fields["m"])["op"] == key, (tx_id, key, fields)

    expected = {user: [START_CREDITS, 0] for user in users}  # balance, held
    for op, _ in book.acked.values():
        if op.kind == "deduct":
            expected[op.user][0] -= op.amount
        elif op.kind == "add":
            expected[op.user][0] += op.amount
        elif op.kind == "reserve":
            expected[op.user][0] -= op.amount
            expected[op.user][1] += op.amount
    for rid, actual in book.settled.items():
        user, amount = book.holds[rid]
        expected[user][0] += amount - actual
        expected[user][1] -= amount
    with Credits(url, cluster=cluster) as check:
        for user in users:
            account = check.get_account(user)
            assert [account.balance, account.held] == expected[user], user
            verification = check.verify_balance(user)
            assert verification.valid, verification
    return {
        "operations": len(book.acked),
        "events": sum(seen.values()),
        "retried": sum(book.retried.values()),
        "unavailable_errors": book.unavailable_errors,
    }


def applied_keys(url: str, users: list[str]) -> Counter[str]:
    """How many events of the users' logs each operation key wrote."""
    seen: Counter[str] = Counter()
    with _raw(url, cluster=False) as raw:
        for user in users:
            for _, fields in _log(raw, user):
                if fields["t"] != "initialize":
                    seen[json.loads(fields["m"])["op"]] += 1
    return seen


def lost_acknowledgements(url: str, users: list[str], book: Book) -> list[str]:
    """Keys of operations the writers were told had applied that the log does not have."""
    seen = applied_keys(url, users)
    return sorted(key for key in book.acked if seen[key] == 0)


def fresh_users(prefix: str, count: int = 6) -> list[str]:
    stamp = time.monotonic_ns()
    return [f"{prefix}-{stamp}-{i}" for i in range(count)]


Fault = Callable[[], None]


def run_with_fault(
    url: str, users: list[str], fault: Fault, *, before: int, after: int, cluster: bool = False
) -> Book:
    """Run the workload; inject ``fault`` after ``before`` acked ops, then run ``after`` more."""
    workload = Workload(url, users, cluster=cluster).start()
    try:
        workload.wait_for(before)
        fault()
        workload.wait_for(workload.book.count + after)
    finally:
        book = workload.stop()
    return book


class CuttingProxy:
    """A TCP proxy in front of a Redis that can drop a connection at a chosen byte.

    ``cut("down", 0)`` lets the next request reach Redis and run, then closes
    the client's connection without passing on a byte of the reply (it waits
    until the client has stopped sending, so a whole pipeline gets through):
    the writes happened, the caller never hears of them. ``cut("up", n)``
    forwards only the next ``n`` bytes the client sends (the first commands of
    a pipeline), then closes both sides: Redis runs the complete commands among
    them and nothing after. Either way the client sees a dropped connection.
    """

    QUIET_S = 0.25  # the client has sent everything when it has been quiet this long

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._plan: tuple[str, int] | None = None
        self._counted = 0
        self.cuts = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cut(self, direction: str, after_bytes: int) -> None:
        with self._lock:
            self._plan, self._counted = (direction, after_bytes), 0

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target_port))
            with self._lock:
                self._sockets += [client, upstream]
            _Link(self, client, upstream).start()

    def _take(self, direction: str, size: int) -> tuple[int, bool]:
        """How many of ``size`` bytes going ``direction`` may pass, and whether to cut here."""
        with self._lock:
            plan = self._plan
            if plan is None or plan[0] != direction:
                return size, False
            allowed = plan[1] - self._counted
            if size < allowed:
                self._counted += size
                return size, False
            self._plan, self.cuts = None, self.cuts + 1
            return max(allowed, 0), True

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()


class _Link:
    """One client connection through the proxy: a pump each way."""

    def __init__(self, proxy: CuttingProxy, client: socket.socket, upstream: socket.socket):
        self._proxy = proxy
        self._client = client
        self._upstream = upstream
        self._last_up = time.monotonic()
        self._dropping = False

    def start(self) -> None:
        threading.Thread(target=self._pump, args=("up",), daemon=True).start()
        threading.Thread(target=self._pump, args=("down",), daemon=True).start()

    def _close(self) -> None:
        for sock in (self._client, self._upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _close_when_client_is_quiet(self) -> None:
        while time.monotonic() - self._last_up < CuttingProxy.QUIET_S:
            time.sleep(0.01)
        self._close()

    def _pump(self, direction: str) -> None:
        src, dst = (
            (self._client, self._upstream) if direction == "up" else (self._upstream, self._client)
        )
        try:
            while data := src.recv(65536):
                if direction == "up":
                    self._last_up = time.monotonic()
                if self._dropping and direction == "down":
                    continue  # the reply is lost
                passed, cut = self._proxy._take(direction, len(data))
                if passed:
                    dst.sendall(data[:passed])
                if cut and direction == "up":
                    break
                if cut:
                    self._dropping = True
                    threading.Thread(target=self._close_when_client_is_quiet, daemon=True).start()
        except OSError:
            pass
        if not self._dropping:
            self._close()


__all__ = [
    "Book",
    "CuttingProxy",
    "Op",
    "Workload",
    "applied_keys",
    "audit",
    "fresh_users",
    "lost_acknowledgements",
    "run_with_fault",
]
