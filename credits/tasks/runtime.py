"""One ledger client per worker process, made on first use.

Never at import: importing :mod:`credits.tasks` (to enqueue a task from a web
app) must not need the store. A prefork child drops whatever client it may
have inherited from its parent, because a redis-py connection shared across a
fork mixes up both processes' replies.
"""

from __future__ import annotations

import threading
from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown

from credits.client import Credits

_lock = threading.Lock()
_client: Credits | None = None


def ledger() -> Credits:
    """This process's :class:`Credits`, from ``CREDITS_REDIS_URL`` (made on first call)."""
    global _client
    with _lock:
        if _client is None:
            _client = Credits.from_env()
        return _client


@worker_process_init.connect
def _forget_inherited_client(**_: Any) -> None:
    global _client
    _client = None  # not closed: its sockets belong to the parent


@worker_process_shutdown.connect
def _close_client(**_: Any) -> None:
    global _client
    with _lock:
        if _client is not None:
            _client.close()
            _client = None
