"""Instructions per operation, client and server, counted by valgrind.

Run as ``python -m bench.instructions [WORKLOAD ...]``.

Wall-clock ratios on a shared two-core VM move by ±15 % from run to run, which
hides the effect of a 10 % library change. Callgrind counts user-space
instructions, which do not depend on the machine's load, so this tool says
precisely what a change to the client (validation, keys, parsing) or to a
script (its redis.call count, number formatting, JSON) is worth per operation.
Kernel and network time (the same for both sides of a comparison) are not
counted, so these ratios are harsher than wall-clock ones.

Method: the server runs under callgrind; its counters are zeroed and dumped
around each workload (``callgrind_control``). Client counts run the workload
under callgrind twice, with N and 5N operations, and take the difference, so
interpreter start-up and imports cancel out.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from bench import baseline
from credits import Credits
from credits.redis_server import find_redis_server, free_port

USER = "app-user-7f3a9c21"
ACTION = "chat_message"
BULK_USERS = 100
CLIENT_OPS = 400  # the client run difference is between this and 5 times this
SERVER_OPS = 1000
SERVER_READY_TIMEOUT_S = 60.0
DUMP_SETTLE_S = 0.5
_TOTAL = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def _deduct(url: str, n: int) -> None:
    with Credits(url) as ledger:
        ledger.initialize_user(USER, baseline.GRANT)
        for _ in range(n):
            ledger.deduct(USER, 1, ACTION)


def _balance(url: str, n: int) -> None:
    with Credits(url) as ledger:
        ledger.initialize_user(USER, baseline.GRANT)
        for _ in range(n):
            ledger.get_balance(USER)


def _baseline(url: str, n: int) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    account = baseline.BaselineAccount.named("instr", "b")
    baseline.fund(client, account)
    sha = baseline.load(client)
    for _ in range(n):
        baseline.deduct(client, sha, account, 1, ACTION)


def _pair(url: str, n: int) -> None:
    with Credits(url) as ledger:
        user = f"{USER}-pair"
        ledger.initialize_user(user, baseline.GRANT)
        for _ in range(n):
            hold = ledger.reserve(user, 10, "video_generation", ttl=3600)
            ledger.settle(hold.id, 7)


def _bulk(url: str, n: int) -> None:
    from credits import models

    item = getattr(models, "BulkItem", None)
    if item is None or not hasattr(Credits, "deduct_many"):
        raise SystemExit("no bulk API (Credits.deduct_many) in this client")
    users = [f"{USER}-{i}" for i in range(BULK_USERS)]
    items = [item(user, 1, "import") for user in users]
    with Credits(url) as ledger:
        for user in users:
            ledger.initialize_user(user, baseline.GRANT)
        for _ in range(n // BULK_USERS):
            ledger.deduct_many(items)


def _bulk_baseline(url: str, n: int) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    accounts = [baseline.BaselineAccount.named("instr", f"b{i}") for i in range(BULK_USERS)]
    for account in accounts:
        baseline.fund(client, account)
    sha = baseline.load(client)
    for _ in range(n // BULK_USERS):
        baseline.deduct_pipelined(client, sha, accounts, 1, "import")


WORKLOADS: dict[str, Callable[[str, int], None]] = {
    "baseline": _baseline,
    "deduct": _deduct,
    "balance": _balance,
    "pair": _pair,
    "bulk-baseline": _bulk_baseline,
    "bulk": _bulk,
}


def _total(pattern: str) -> int:
    counts = [_TOTAL.search(Path(f).read_text("utf-8")) for f in glob.glob(pattern)]
    return max((int(m[1]) for m in counts if m), default=0)


def _client_run(workload: str, url: str, n: int, valgrind_out: str | None) -> None:
    argv = [sys.executable, "-m", "bench.instructions", "--client", workload, url, str(n)]
    if valgrind_out is not None:
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={valgrind_out}", *argv]
    subprocess.run(argv, check=True, capture_output=True, cwd=Path(__file__).parents[1])


def client_per_op(workload: str, url: str, directory: str) -> float:
    out = os.path.join(directory, f"client-{workload}")
    _client_run(workload, url, CLIENT_OPS, out + ".a")
    _client_run(workload, url, 5 * CLIENT_OPS, out + ".b")
    return (_total(out + ".b") - _total(out + ".a")) / (4 * CLIENT_OPS)


def server_per_op(workload: str, url: str, pid: int, out: str) -> float:
    _client_run(workload, url, SERVER_OPS // 5, None)  # warm: scripts loaded, keys exist
    totals = []
    for n in (SERVER_OPS // 5, SERVER_OPS):
        for stale in glob.glob(out + "*"):
            os.remove(stale)
        subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
        _client_run(workload, url, n, None)
        subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
        time.sleep(DUMP_SETTLE_S)
        totals.append(_total(out + "*"))
    return (totals[1] - totals[0]) / (SERVER_OPS - SERVER_OPS // 5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument(
        "workloads", nargs="*", metavar="WORKLOAD", help=f"some of {', '.join(WORKLOADS)} (all)"
    )
    parser.add_argument(
        "--client", nargs=3, metavar=("WORKLOAD", "URL", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.client:
        workload, url, n = args.client
        WORKLOADS[workload](url, int(n))
        return 0
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    workloads = args.workloads or list(WORKLOADS)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print(
            "valgrind (with callgrind_control) is needed: apt-get install valgrind", file=sys.stderr
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="credits-instr-") as directory:
        port = free_port()
        out = os.path.join(directory, "server.cg")
        argv = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            find_redis_server(), "--bind", "127.0.0.1", "--port", str(port),
            "--save", "", "--appendonly", "no", "--dir", directory,
        ]  # fmt: skip
        server = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            _wait_for(url)
            print(f"{'workload':14} {'client/op':>10} {'server/op':>10} {'total/op':>10}")
            for workload in workloads:
                server_count = server_per_op(workload, url, server.pid, out)
                client_count = client_per_op(workload, url, directory)
                total = client_count + server_count
                print(f"{workload:14} {client_count:10,.0f} {server_count:10,.0f} {total:10,.0f}")
        finally:
            server.terminate()
            server.wait()
    return 0


def _wait_for(url: str) -> None:
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


if __name__ == "__main__":
    raise SystemExit(main())
