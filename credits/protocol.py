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

from credits.scripts import Script

T = TypeVar("T")
Arg = str | int


@dataclass(frozen=True, slots=True)
class Command:
    """One Redis command, e.g. ``("XREVRANGE", key, "+", "-", "COUNT", 50)``.

    ``every_node``: a keyless command (``CONFIG GET``) that a cluster client
    must send to every node; the reply is then ``{node: reply}``.
    """

    args: tuple[Arg, ...]
    every_node: bool = False


@dataclass(frozen=True, slots=True)
class Batch:
    """Commands sent in one pipeline (no MULTI); the reply is their list of replies."""

    commands: tuple[Command, ...]


Call = Command | Batch
"""A Batch's reply is a list in which a failed command's entry is its (credits) error."""
Steps = Generator[Call, Any, T]


class ScriptMissing(Exception):
    """The server does not have a script cached (NOSCRIPT); thrown into the steps."""


def run_script(script: Script, keys: list[str], args: list[Arg]) -> Steps[Any]:
    """EVALSHA, and EVAL once if the server lost its script cache."""
    head: tuple[Arg, ...] = (len(keys), *keys, *args)
    try:
        return (yield Command(("EVALSHA", script.sha, *head)))
    except ScriptMissing:
        return (yield Command(("EVAL", script.source, *head)))


def run_scripts(script: Script, calls: list[tuple[list[str], list[Arg]]]) -> Steps[list[Any]]:
    """Many calls of one script in one pipeline; each entry is its reply or its error.

    A server that lost its script cache answers NOSCRIPT to every call sent to
    it: then one call is sent with EVAL (which caches the script on its node)
    and the rest again with EVALSHA, in one more round trip per node that lacked
    it, instead of sending the source with every call.
    """

    def command(verb: str, body: str, i: int) -> Command:
        keys, args = calls[i]
        return Command((verb, body, len(keys), *keys, *args))

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
    return replies


def batch_values(replies: list[Any]) -> list[Any]:
    """The replies of a Batch whose every command must succeed: raise the first error."""
    for reply in replies:
        if isinstance(reply, BaseException):
            raise reply
    return replies
