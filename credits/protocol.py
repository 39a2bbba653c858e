"""The sans-I/O protocol the two clients share.

Every operation is a generator that *yields* the Redis calls it needs and
*receives* their replies; it returns the result or raises a credits error.
:class:`~credits.client.Credits` carries each call with blocking I/O and
:class:`~credits.aio.AsyncCredits` with ``await``: validation, key building,
script arguments, reply parsing and multi-step loops (verify, rebuild, sweep)
are written once, here and in the modules that build on it.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from credits import limits, replies
from credits.errors import StoreRefusedError
from credits.scripts import Script
from credits.scripts import script as script_named

T = TypeVar("T")
Arg = str | int


@dataclass(frozen=True, slots=True)
class Now:
    """What every script is told besides its own arguments: the time, and the client's setup.

    ``ms`` is Unix ms from an explicit ``clock=``, or None: then the script reads
    the Redis server's clock (the usual case). ``config`` is the client's script
    configuration (:func:`credits.keys.config_arg`).
    """

    ms: int | None = None
    config: str = ""


@dataclass(frozen=True, slots=True)
class Command:
    """One Redis command, e.g. ``("XREVRANGE", key, "+", "-", "COUNT", 50)``.

    ``every_node``: a keyless command (``CONFIG GET``) that a cluster client
    must send to every node; the reply is then ``{node: reply}``.

    ``writes``: the command changes what a caller is told (a write script).
    With ``wait_replicas`` the executor acknowledges it only once that many
    replicas have it, waiting on the connection that ran it
    (:mod:`credits.transport`); reads are never waited for.
    """

    args: tuple[Arg, ...]
    every_node: bool = False
    writes: bool = False


@dataclass(frozen=True, slots=True)
class Batch:
    """Commands sent in one pipeline (no MULTI); the reply is their list of replies."""

    commands: tuple[Command, ...]

    @property
    def writes(self) -> bool:
        return any(command.writes for command in self.commands)


@dataclass(frozen=True, slots=True)
class ArchiveCall:
    """One call of the archive tier (:class:`credits.archive.base.Archive`): ``method(*args)``.

    The archive is a database, not Redis, but reads that span both tiers are
    steps like any other: the executors send these to the client's archive
    (blocking, or in a worker thread for the asyncio client), so the logic is
    written once. Without an archive the reply is
    :class:`~credits.errors.ArchiveUnavailableError`, thrown into the steps.
    """

    method: str
    args: tuple[Any, ...] = ()


Call = Command | Batch | ArchiveCall
"""A Batch's reply is a list in which a failed command's entry is its (credits) error."""
Steps = Generator[Call, Any, T]


class ScriptMissing(Exception):
    """The server does not have a script cached (NOSCRIPT); thrown into the steps."""


def needs_upkeep(reply: Any) -> bool:
    """The script found its user's upkeep due and decided nothing: run it, then call again."""
    return isinstance(reply, list) and bool(reply) and reply[0] == "upkeep"


# KEYS and ARGV of the upkeep script: a per-user script's first thirteen keys
# (the user's own and its bucket's) and first three arguments (time, config, user).
UPKEEP_KEYS = 13
UPKEEP_ARGS = 3


def _evalsha(script: Script, keys: list[str], args: list[Arg]) -> Steps[Any]:
    """EVALSHA, and EVAL once if the server lost its script cache."""
    head: tuple[Arg, ...] = (len(keys), *keys, *args)
    try:
        return (yield Command(("EVALSHA", script.sha, *head), writes=script.writes))
    except ScriptMissing:
        return (yield Command(("EVAL", script.source, *head), writes=script.writes))


def run_upkeep(keys: list[str], args: list[Arg]) -> Steps[None]:
    """Run a user's due upkeep to the end, in bounded calls (``run_upkeep.lua``)."""
    context = replies.Context("upkeep", str(args[UPKEEP_ARGS - 1]))
    for _ in range(limits.UPKEEP_CALLS_MAX):
        reply = yield from _evalsha(
            script_named("run_upkeep"), keys[:UPKEEP_KEYS], args[:UPKEEP_ARGS]
        )
        if not needs_upkeep(reply):
            replies.check(reply, context)
            return
    raise StoreRefusedError(f"upkeep still due after {limits.UPKEEP_CALLS_MAX} calls")


def run_script(script: Script, keys: list[str], args: list[Arg]) -> Steps[Any]:
    """EVALSHA (EVAL once if the server lost its script cache); upkeep first when it is due.

    A per-user script that finds its user's upkeep due (an expired hold, a lot
    to start or expire) decides nothing and answers ``{"upkeep"}``; then the
    upkeep runs to the end in bounded calls, and the script is called again. So
    the call that finally decides never counts an expired hold or lot as live.
    """
    for _ in range(limits.UPKEEP_CALLS_MAX):
        reply = yield from _evalsha(script, keys, args)
        if not needs_upkeep(reply):
            return reply
        yield from run_upkeep(keys, args)
    raise StoreRefusedError(
        f"{script.name}: upkeep still due after {limits.UPKEEP_CALLS_MAX} calls; nothing decided"
    )


def run_scripts(script: Script, calls: list[tuple[list[str], list[Arg]]]) -> Steps[list[Any]]:
    """Many calls of one script in one pipeline; each entry is its reply or its error.

    A server that lost its script cache answers NOSCRIPT to every call sent to
    it: then one call is sent with EVAL (which caches the script on its node)
    and the rest again with EVALSHA, in one more round trip per node that lacked
    it, instead of sending the source with every call.
    """

    def command(verb: str, body: str, i: int) -> Command:
        keys, args = calls[i]
        return Command((verb, body, len(keys), *keys, *args), writes=script.writes)

    replies: list[Any] = list(
        (yield Batch(tuple(command("EVALSHA", script.sha, i) for i in range(len(calls)))))
    )
    pending = [i for i, reply in enumerate(replies) if isinstance(reply, ScriptMissing)]
    while pending:
        first, rest = pending[0], pending[1:]
        again = yield Batch(
            (
                command("EVAL", script.source, first),
                *(command("EVALSHA", script.sha, i) for i in rest),
            )
        )
        for i, reply in zip(pending, again, strict=True):
            replies[i] = reply
        pending = [i for i in rest if isinstance(replies[i], ScriptMissing)]
    # Items whose user had upkeep due: run it (one user at a time), then send them again.
    for _ in range(limits.UPKEEP_CALLS_MAX):
        due = [i for i, reply in enumerate(replies) if needs_upkeep(reply)]
        if not due:
            return replies
        for i in due:
            yield from run_upkeep(*calls[i])
        again = yield Batch(tuple(command("EVALSHA", script.sha, i) for i in due))
        for i, reply in zip(due, again, strict=True):
            replies[i] = reply
    return [
        StoreRefusedError(f"{script.name}: upkeep still due; nothing decided")
        if needs_upkeep(reply)
        else reply
        for reply in replies
    ]


def batch_values(replies: list[Any]) -> list[Any]:
    """The replies of a Batch whose every command must succeed: raise the first error."""
    for reply in replies:
        if isinstance(reply, BaseException):
            raise reply
    return replies
