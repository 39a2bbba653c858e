"""Drive many ledger operations at once, one pipeline per step, for seeding.

The harness needs users with a million events and a million open holds in
seconds, written by the ledger's own scripts so their format and memory are
the real ones. Every operation in :mod:`credits.ledger` is a generator of Redis
calls (:mod:`credits.protocol`), so many of them can advance together: each round
sends the next call of every unfinished operation in one pipeline and feeds
each its reply. Errors are thrown into the operation exactly as the clients do
(NOSCRIPT becomes an EVAL retry), so nothing here knows the script format.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar

import redis

from credits.protocol import Command, Steps
from credits.transport import translate

T = TypeVar("T")
PIPELINE_OPS_DEFAULT = 1000


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def run_pipelined(
    client: redis.Redis, operations: Iterable[Steps[Any]], per_pipeline: int = PIPELINE_OPS_DEFAULT
) -> int:
    """Run every operation to its end, ``per_pipeline`` at a time; returns how many ran.

    A credits error raised by an operation (insufficient credits, say) is raised here.
    """
    done = 0
    for chunk in _chunks(operations, per_pipeline):
        pending = [(steps, next(steps)) for steps in chunk]
        while pending:
            pipe = client.pipeline(transaction=False)
            for _, call in pending:
                if not isinstance(call, Command):
                    raise TypeError("run_pipelined carries single commands only")
                pipe.execute_command(*call.args)  # type: ignore[no-untyped-call]
            replies = pipe.execute(raise_on_error=False)
            advanced = []
            for (steps, _), reply in zip(pending, replies, strict=True):
                try:
                    if isinstance(reply, Exception):
                        call = steps.throw(translate(reply))
                    else:
                        call = steps.send(reply)
                except StopIteration:
                    done += 1
                    continue
                advanced.append((steps, call))
            pending = advanced
    return done
