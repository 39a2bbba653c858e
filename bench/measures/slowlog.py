"""The longest single server call while verifying and rebuilding a 1,000,000-event user.

Redis runs one command (or script) at a time, so the longest one is how long
every app sharing the server can be stalled. The contract asks verify and rebuild to
read a long log in bounded chunks; here SLOWLOG records every command
(``slowlog-log-slower-than 0``) during one ``verify_balance`` and one
``rebuild_balance`` of the big user, and the longest entry is reported, with
the longest script call (EVALSHA/EVAL) beside it. ``LATENCY LATEST`` (threshold
1 ms) is read as a second witness. The server's settings are put back after.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import redis

from bench.context import Context, Measure
from bench.result import Outcome, Target
from bench.seed import synthetic_log
from credits import Credits

SLOWLOG_LEN = 100_000
LATENCY_THRESHOLD_MS = 1
SCRIPT_COMMANDS = frozenset({"evalsha", "eval"})
LIMIT_MS = 5


@dataclass(frozen=True, slots=True)
class Slowest:
    longest_us: int
    longest_command: str
    longest_script_us: int
    commands: int
    over_limit: int  # calls longer than the target
    median_us: int  # of all calls: how long a typical chunk read or script takes


@contextlib.contextmanager
def recording(client: redis.Redis) -> Iterator[None]:
    """Log every command in SLOWLOG and latency events over 1 ms; restore settings after."""
    saved = cast(
        dict[str, str],
        {
            **client.config_get("slowlog-log-slower-than"),
            **client.config_get("slowlog-max-len"),
            **client.config_get("latency-monitor-threshold"),
        },
    )
    client.config_set("slowlog-max-len", SLOWLOG_LEN)
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("latency-monitor-threshold", LATENCY_THRESHOLD_MS)
    client.slowlog_reset()
    client.execute_command("LATENCY", "RESET")  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        for name, value in saved.items():
            client.config_set(name, value)


def slowest(client: redis.Redis) -> Slowest:
    entries: list[dict[str, Any]] = client.slowlog_get(SLOWLOG_LEN)
    longest = max(entries, key=lambda e: int(e["duration"]))
    scripts = [
        int(e["duration"]) for e in entries if _command_name(e["command"]) in SCRIPT_COMMANDS
    ]
    durations = sorted(int(e["duration"]) for e in entries)
    return Slowest(
        longest_us=int(longest["duration"]),
        longest_command=_describe(longest["command"]),
        longest_script_us=max(scripts, default=0),
        commands=len(entries),
        over_limit=sum(1 for d in durations if d > LIMIT_MS * 1000),
        median_us=durations[len(durations) // 2],
    )


def _command_name(command: object) -> str:
    text = command.decode() if isinstance(command, bytes) else str(command)
    return text.split(" ", 1)[0].lower()


def _describe(command: object) -> str:
    text = command.decode() if isinstance(command, bytes) else str(command)
    words = text.split(" ")
    return " ".join(words[:1] + [w for w in words[2:] if w.isupper() or w.isdigit()][:4])


def run(ctx: Context) -> Outcome:
    events = ctx.sizes.history_events
    user = ctx.user("rebuild")
    with Credits(ctx.target.url) as ledger, contextlib.closing(ctx.target.client()) as client:
        synthetic_log(client, user, events, ctx.now_ms())
        started = time.perf_counter()
        with recording(client):
            verification = ledger.verify_balance(user)
            verified_s = time.perf_counter() - started
            ledger.rebuild_balance(user)
            found = slowest(client)
            latest: list[Any] = client.execute_command("LATENCY", "LATEST")  # type: ignore[no-untyped-call]
        total_s = time.perf_counter() - started
    if not verification.valid or verification.events != events:
        raise RuntimeError(f"the seeded log did not verify: {verification}")
    spikes = ", ".join(f"{e[0]} max {e[3]} ms" for e in latest) or "none over 1 ms"
    notes = [
        f"{events:,}-event user; verify {verified_s:.1f} s, verify + rebuild {total_s:.1f} s, "
        f"{found.commands} server calls, median {found.median_us} µs, "
        f"{found.over_limit} longer than {LIMIT_MS} ms",
        f"longest call: `{found.longest_command}` {found.longest_us} µs; longest script call "
        f"{found.longest_script_us} µs",
        f"LATENCY LATEST: {spikes}",
    ]
    if ctx.sizes.quick:
        notes.append(f"quick mode: {events:,} events instead of 1,000,000")
    return Outcome(
        project=found.longest_us / 1000, baseline=None, ratio=None, unit="ms", notes=notes
    )


MEASURE = Measure(
    key="slowlog",
    title="longest single call while verifying + rebuilding a 1M-event user",
    baseline="—",
    target=Target(value_max=LIMIT_MS),
    run=run,
)
