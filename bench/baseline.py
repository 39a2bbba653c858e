"""The baseline most rows compare against: a minimal deduct Lua called by bare redis-py.

The targets ask how much the ledger's extras (idempotency, holds, lazy expiry,
invariant checks, validation, typed results) cost over what a team would write
by hand: a check-and-decrement plus a log append in one script, called by SHA.
The same script serves the sync, asyncio and pipelined baselines, with the
reply parsed as a hand-written client would (status, then ints).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

SOURCE = (Path(__file__).parent / "minimal_deduct.lua").read_text("utf-8")
GRANT = 10**15


class InsufficientError(Exception):
    """The baseline's only business error."""


@dataclass(frozen=True, slots=True)
class BaselineAccount:
    """One baseline user: a balance hash and a log stream."""

    balance_key: str
    log_key: str

    @classmethod
    def named(cls, tag: str, name: str) -> BaselineAccount:
        return cls(f"{tag}:base:{{{name}}}:bal", f"{tag}:base:{{{name}}}:log")


def load(client: redis.Redis) -> str:
    """Cache the script on the server; returns its SHA."""
    return str(client.script_load(SOURCE))


def fund(client: redis.Redis, account: BaselineAccount, credits: int = GRANT) -> None:
    client.hset(account.balance_key, "bal", str(credits))


def parse(reply: Any) -> int:
    """The balance after a deduct, or :class:`InsufficientError`."""
    if reply[0] != "ok":
        raise InsufficientError(reply[1])
    return int(reply[2])


def deduct(
    client: redis.Redis, sha: str, account: BaselineAccount, amount: int, action: str
) -> int:
    """One baseline deduct; returns the balance after it."""
    reply = client.evalsha(sha, 2, account.balance_key, account.log_key, amount, action)
    return parse(reply)


async def deduct_async(
    client: redis.asyncio.Redis, sha: str, account: BaselineAccount, amount: int, action: str
) -> int:
    reply = await client.evalsha(sha, 2, account.balance_key, account.log_key, amount, action)
    return parse(reply)


def deduct_pipelined(
    client: redis.Redis, sha: str, accounts: list[BaselineAccount], amount: int, action: str
) -> list[int]:
    """One baseline deduct per account in one pipeline (no MULTI): the bulk baseline."""
    pipe = client.pipeline(transaction=False)
    for account in accounts:
        pipe.evalsha(sha, 2, account.balance_key, account.log_key, amount, action)
    return [parse(reply) for reply in pipe.execute()]
