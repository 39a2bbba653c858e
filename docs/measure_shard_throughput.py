"""Per-shard deduct throughput of the ledger, measured on one local redis-server.

The figures behind docs/SCALING.md. A Redis Cluster shard is one redis-server
process, and Redis runs one command (one Lua script) at a time on one core, so
what a shard can take is bounded by the server's CPU time per deduct. This
script starts its own redis-server (the one the tests use), seeds users, and
for each persistence mode and load shape drives real ``Credits.deduct`` /
``deduct_many`` calls from several processes for a few seconds. Then it reads
the server's own counters:

* ``INFO cpu``: CPU seconds of Redis's main thread (the one that runs scripts);
  deducts per second at a full core = acknowledged deducts / main-thread CPU seconds;
* ``INFO commandstats``: EVALSHA calls and microseconds per call (script time only);
* ``INFO persistence`` / ``INFO memory``: AOF bytes and memory per deduct.

Load generators and the server share the machine (2 cores here), so the
acknowledged rate is a floor; the projection at a full core is the shard's
capacity. Run::

    python docs/measure_shard_throughput.py            # about a minute
    python docs/measure_shard_throughput.py --seconds 10 --processes 3

Also measures settles (reserve, then settle, one call each) the same way, and,
with ``--celery``, settle tasks through a real Celery worker.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from credits import BulkItem, Credits, TxResult
from credits.redis_server import RedisServer, find_redis_server

USERS = 10_000
START_BALANCE = 10**12
SEED_BATCH = 1000
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LoadResult:
    ops: int
    client_cpu_s: float


def _user(rng: random.Random) -> str:
    return f"shard-user-{rng.randrange(USERS)}"


def _pipelined(url: str, seconds: float, batch: int, keys: bool, seed: int) -> LoadResult:
    rng = random.Random(seed)
    ops = 0
    cpu0 = time.process_time()
    with Credits(url) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            items = [
                BulkItem(
                    _user(rng), 1, "chat_message", None, f"k{seed}-{ops + i}" if keys else None
                )
                for i in range(batch)
            ]
            ops += sum(isinstance(r, TxResult) for r in client.deduct_many(items))
    return LoadResult(ops, time.process_time() - cpu0)


def _single_calls(url: str, seconds: float, threads: int, keys: bool, seed: int) -> LoadResult:
    counts = [0] * threads
    cpu0 = time.process_time()

    def run(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        with Credits(url) as client:
            deadline = time.monotonic() + seconds
            n = 0
            while time.monotonic() < deadline:
                key = f"s{seed}-{index}-{n}" if keys else None
                client.deduct(_user(rng), 1, "chat_message", idempotency_key=key)
                n += 1
            counts[index] = n

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return LoadResult(sum(counts), time.process_time() - cpu0)


def _settles(url: str, seconds: float, threads: int, keys: bool, seed: int) -> LoadResult:
    """Reserve then settle, one call each; counts settles."""
    counts = [0] * threads
    cpu0 = time.process_time()

    def run(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        with Credits(url) as client:
            deadline = time.monotonic() + seconds
            n = 0
            while time.monotonic() < deadline:
                hold = client.reserve(_user(rng), 10, "video_generation", ttl=3600)
                client.settle(hold.id, 7)
                n += 1
            counts[index] = n

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return LoadResult(sum(counts), time.process_time() - cpu0)


SHAPES = {
    "pipelined": _pipelined,
    "single calls": _single_calls,
    "reserve+settle": _settles,
}


def _job(args: tuple[str, str, float, int, bool, int]) -> LoadResult:
    shape, url, seconds, size, keys, seed = args
    return SHAPES[shape](url, seconds, size, keys, seed)


def _server_counters(client: redis.Redis) -> dict[str, float]:
    info = client.info()
    stats = client.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {})
    return {
        "cpu_main_s": float(info.get("used_cpu_sys_main_thread", info["used_cpu_sys"]))
        + float(info.get("used_cpu_user_main_thread", info["used_cpu_user"])),
        "cpu_all_s": float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
        "evalsha_calls": float(evalsha.get("calls", 0)),
        "evalsha_usec": float(evalsha.get("usec", 0)),
        "aof_bytes": float(info.get("aof_current_size", 0)),
        "memory": float(info["used_memory"]),
    }


def _seed(url: str) -> None:
    with Credits(url) as client:
        for start in range(0, USERS, SEED_BATCH):
            client.add_many(
                [
                    BulkItem(f"shard-user-{i}", START_BALANCE, "grant")
                    for i in range(start, min(USERS, start + SEED_BATCH))
                ]
            )


def measure(
    server: RedisServer, shape: str, processes: int, size: int, keys: bool, seconds: float
) -> dict[str, float]:
    with server.client() as admin:
        admin.config_resetstat()
        before = _server_counters(admin)
        started = time.monotonic()
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            results = pool.map(
                _job,
                [
                    (shape, server.url, seconds, size, keys, random.randrange(10**9))
                    for _ in range(processes)
                ],
            )
        wall = time.monotonic() - started
        after = _server_counters(admin)
    ops = sum(r.ops for r in results)
    delta = {k: after[k] - before[k] for k in after}
    scripts_per_op = delta["evalsha_calls"] / ops if ops else 0.0
    return {
        "ops_per_s": ops / wall,
        "server_main_cpu_share": delta["cpu_main_s"] / wall,
        "ops_per_main_core_s": ops / delta["cpu_main_s"] if delta["cpu_main_s"] else 0.0,
        "script_usec_per_op": delta["evalsha_usec"] / ops if ops else 0.0,
        "scripts_per_op": scripts_per_op,
        "client_cpu_usec_per_op": 1e6 * sum(r.client_cpu_s for r in results) / ops if ops else 0.0,
        "aof_bytes_per_op": delta["aof_bytes"] / ops if ops else 0.0,
    }


def celery_settles(server: RedisServer, tasks: int) -> dict[str, float]:
    """Settle tasks drained by one prefork worker with 2 processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDITS_", "CELERY_"))} | {
        "CREDITS_REDIS_URL": server.url,
        "CELERY_BROKER_URL": server.url,
        "CELERY_RESULT_BACKEND": server.url,
    }
    queue = f"measure-{os.getpid()}"
    with Credits(server.url) as client:
        holds = [
            client.reserve(f"shard-user-{i % USERS}", 10, "video_generation", ttl=3600).id
            for i in range(tasks)
        ]
    producer = (
        "import json, sys\nfrom credits.tasks import settle_reservation\n"
        "for rid in json.load(sys.stdin):\n"
        "    settle_reservation.apply_async((rid, 7), queue=sys.argv[1])\n"
    )
    subprocess.run(
        [sys.executable, "-c", producer, queue],
        input=json.dumps(holds),
        text=True,
        env=env,
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    with server.client() as admin:
        commands_before = int(admin.info("stats")["total_commands_processed"])
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "credits.tasks",
                "worker",
                "--pool=prefork",
                "--concurrency=2",
                "--queues",
                queue,
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "WARNING",
            ],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            with Credits(server.url) as client:
                first = time.monotonic()
                while client.redis.llen(queue) == tasks:
                    time.sleep(0.01)
                    if time.monotonic() - first > 60:
                        raise TimeoutError("the worker did not start")
                started = time.monotonic()
                while any(client.get_reservation(rid).status == "open" for rid in holds[-20:]):
                    time.sleep(0.02)
                open_left = sum(client.get_reservation(r).status == "open" for r in holds)
                while open_left:
                    time.sleep(0.05)
                    open_left = sum(client.get_reservation(r).status == "open" for r in holds)
                elapsed = time.monotonic() - started
        finally:
            os.killpg(worker.pid, 15)
            worker.wait(30)
    with server.client() as admin:
        commands = int(admin.info("stats")["total_commands_processed"]) - commands_before
    return {
        "settle_tasks_per_s": tasks / elapsed,
        "per_worker_process": tasks / elapsed / 2,
        "redis_commands_per_task": commands / tasks,
    }


def memory_per_event(binary: str, events: int) -> dict[str, float]:
    """Memory per log event (no key) and per idempotency key, over ``events`` deducts each."""
    users = 1000
    figures = {}
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(directory, executable=binary).start()
        try:
            with Credits(server.url) as client, server.client() as admin:
                for start in range(0, users, SEED_BATCH):
                    client.add_many(
                        [
                            BulkItem(f"mem-{i}", START_BALANCE, "grant")
                            for i in range(start, start + SEED_BATCH)
                        ]
                    )
                for label, keys in (("event", False), ("event_and_key", True)):
                    before = int(admin.info("memory")["used_memory"])
                    for start in range(0, events, 1000):
                        client.deduct_many(
                            [
                                BulkItem(
                                    f"mem-{i % users}",
                                    1,
                                    "chat_message",
                                    None,
                                    f"{label}-{start + i}" if keys else None,
                                )
                                for i in range(1000)
                            ]
                        )
                    figures[label] = (int(admin.info("memory")["used_memory"]) - before) / events
        finally:
            server.stop()
    figures["key"] = figures["event_and_key"] - figures["event"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch", type=int, default=200, help="items per deduct_many")
    parser.add_argument("--threads", type=int, default=8, help="threads per process, single calls")
    parser.add_argument("--celery", type=int, default=0, help="also time N settle tasks")
    parser.add_argument("--redis-server", default=None, help="binary (default: the tests' one)")
    parser.add_argument("--memory", type=int, default=0, help="also measure memory over N events")
    args = parser.parse_args()

    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, {platform.processor() or '?'}")
    binary = args.redis_server or find_redis_server()
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"# {binary}: {version}")
    print(f"# {args.processes} load processes, {args.seconds} s per run, {USERS} users\n")
    header = (
        "| persistence | load | idempotency key | acked/s | Redis main-thread CPU | "
        "per full core/s | script µs/op | client CPU µs/op | AOF B/op |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for fsync in ("off", "everysec", "always"):
        with tempfile.TemporaryDirectory() as directory:
            server = RedisServer(
                directory,
                executable=binary,
                persistent=fsync != "off",
                appendfsync="everysec" if fsync == "off" else fsync,  # type: ignore[arg-type]
            ).start()
            try:
                _seed(server.url)
                runs = [
                    ("pipelined", args.batch, False),
                    ("pipelined", args.batch, True),
                    ("single calls", args.threads, True),
                    ("reserve+settle", args.threads, False),
                ]
                for shape, size, keys in runs:
                    r = measure(server, shape, args.processes, size, keys, args.seconds)
                    load = (
                        f"deduct_many x{size}"
                        if shape == "pipelined"
                        else f"{shape}, {size} threads/process"
                    )
                    print(
                        f"| {fsync} | {load} | {'yes' if keys else 'no'} | {r['ops_per_s']:,.0f} | "
                        f"{r['server_main_cpu_share']:.0%} | {r['ops_per_main_core_s']:,.0f} | "
                        f"{r['script_usec_per_op']:.1f} | {r['client_cpu_usec_per_op']:.0f} | "
                        f"{r['aof_bytes_per_op']:.0f} |",
                        flush=True,
                    )
                if args.celery and fsync == "everysec":
                    c = celery_settles(server, args.celery)
                    print(
                        f"\nCelery: {args.celery} settle tasks, 1 worker x 2 processes: "
                        f"{c['settle_tasks_per_s']:,.0f} tasks/s "
                        f"({c['per_worker_process']:,.0f} per worker process), "
                        f"{c['redis_commands_per_task']:.0f} Redis commands per task "
                        "(broker, results, events, outbox, ledger)\n",
                        flush=True,
                    )
            finally:
                server.stop()
    if args.memory:
        m = memory_per_event(binary, args.memory)
        print(
            f"\nMemory over {args.memory:,} deducts on 1,000 users: "
            f"{m['event']:.0f} B per log event, "
            f"{m['key']:.0f} B more per idempotency key (kept 48 h)"
        )


if __name__ == "__main__":
    main()
