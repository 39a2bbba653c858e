"""``wait_replicas``: a write is acknowledged only once n replicas have it.

Why: Redis replicates asynchronously. A write the primary answered can die
with the primary before its replica got it, and a failover then promotes a
replica that never saw it: a charge the app was told was made, gone, with a
log and a cache that agree (so no verify can tell). With ``wait_replicas=n``
every write script is followed, **in the same pipeline, on the same
connection**, by ``WAIT n timeout`` (or ``WAITAOF 0 n timeout`` where the
server has it, Redis 7.2+: n replicas have it fsynced in their AOF). Redis
measures WAIT against the offset of *that connection's* last command, so a
WAIT on another connection would say yes to writes it never saw; a
non-transactional pipeline keeps both on one connection (inside MULTI, WAIT
does not block at all). Fewer replicas in time is
:class:`~credits.errors.StoreUnavailableError`: the write may exist on the
primary only, and the caller repeats it with the same idempotency key or
reservation id, which applies it once.

On a Cluster the WAIT goes to the node that owns each write's slot, one per
node of a pipeline; a write that was redirected elsewhere (MOVED) while the
WAIT stayed behind is reported the same way, as not acknowledged.

Everything here is shared by the blocking and the asyncio executors
(:mod:`credits.transport`): they differ only in how they send the pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from redis import exceptions as redis_errors

from credits.errors import StoreRefusedError, StoreUnavailableError
from credits.protocol import ArchiveCall, Arg, Batch, Call, Command

# WAITAOF 0 0 0 answers at once on 7.2+ ("unknown command" before): how a
# client learns which of the two its server speaks, once.
PROBE: Final[tuple[Arg, ...]] = ("WAITAOF", 0, 0, 0)
WAITAOF: Final = "WAITAOF"
WAIT: Final = "WAIT"
_SCRIPT_VERBS: Final = frozenset({"EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO"})


@dataclass(frozen=True, slots=True)
class WaitPolicy:
    """How many replicas a write needs, and how long it may wait for them."""

    replicas: int
    timeout_ms: int


class Replication:
    """One client's waiting for replicas: the verb its server knows, and the checks.

    ``verb`` is learnt from :data:`PROBE` before the first waited-for write
    (one round trip per client); the executors send the probe, this class
    reads its answer.
    """

    def __init__(self, policy: WaitPolicy) -> None:
        self.policy = policy
        self.verb: str | None = None

    def applies_to(self, call: Call) -> bool:
        return self.policy.replicas > 0 and not isinstance(call, ArchiveCall) and call.writes

    def learn(self, reply: Any) -> None:
        """Read the probe's answer: a reply (WAITAOF known) or the ResponseError it raised."""
        if not isinstance(reply, BaseException):
            self.verb = WAITAOF
            return
        if "unknown command" in str(reply).lower():
            self.verb = WAIT
            return
        error = StoreRefusedError(
            f"wait_replicas: the server refused {PROBE[0]} ({type(reply).__name__}: {reply}); "
            "an ACL user needs +wait and +waitaof"
        )
        error.__cause__ = reply
        raise error

    def wait_args(self) -> tuple[Arg, ...]:
        n, timeout = self.policy.replicas, self.policy.timeout_ms
        return (WAITAOF, 0, n, timeout) if self.verb == WAITAOF else (WAIT, n, timeout)

    def acknowledged(self, reply: Any) -> int | None:
        """Replicas that have the write, from a WAIT or WAITAOF reply; None for an error."""
        if isinstance(reply, BaseException):
            if self.verb == WAITAOF and "unknown command" in str(reply).lower():
                self.verb = WAIT  # a node of a cluster mid-upgrade: WAIT from now on
            return None
        if isinstance(reply, list | tuple):
            return int(reply[1])
        return int(reply)

    def short(self, replies: Sequence[Any]) -> list[str]:
        """What each WAIT that fell short of the policy answered (empty: all good)."""
        answers: list[str] = []
        for reply in replies:
            count = self.acknowledged(reply)
            if count is None:
                answers.append(f"{type(reply).__name__}: {reply}")
            elif count < self.policy.replicas:
                answers.append(str(count))
        return answers

    def not_acknowledged(self, answers: Sequence[str]) -> StoreUnavailableError:
        """The error of a write whose WAIT fell short (or was refused, or was redirected)."""
        n, timeout = self.policy.replicas, self.policy.timeout_ms
        seen = ", ".join(answers)
        return StoreUnavailableError(
            f"write not acknowledged by {n} replica(s) within {timeout} ms ({self.verb} "
            f"answered {seen}): it may exist on the primary only, and a failover would lose "
            "it; repeat it with the same idempotency key or reservation id, which applies it once"
        )


def commands_of(call: Call) -> list[Command]:
    """The Redis commands of a call (none for an archive call)."""
    if isinstance(call, Command):
        return [call]
    if isinstance(call, Batch):
        return list(call.commands)
    return []


def first_key(command: Command) -> str | None:
    """The key a write routes by on a Cluster: a script's first key, else the first argument."""
    args = command.args
    if str(args[0]).upper() in _SCRIPT_VERBS:
        return str(args[3]) if len(args) > 3 and int(args[2]) > 0 else None
    return str(args[1]) if len(args) > 1 else None


def raise_first_error(replies: Sequence[Any]) -> None:
    """A single command's own failure comes first: the raw redis-py error, for ``drive``."""
    if replies and isinstance(replies[0], redis_errors.RedisError | OSError):
        raise replies[0]


__all__ = [
    "PROBE",
    "Replication",
    "WaitPolicy",
    "commands_of",
    "first_key",
    "raise_first_error",
]
