"""Waiting for another process: poll with a deadline, never a fixed sleep.

The one ``wait_until`` of the project (the embedded server, ``credits up`` and
the tests all wait through it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

POLL_INTERVAL_S: Final = 0.02


def wait_until(
    check: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = POLL_INTERVAL_S,
) -> None:
    """Poll ``check`` every ``interval_s`` until it returns True.

    ``check`` may raise to abort early (for example when the process it waits
    for has died).

    Raises:
        TimeoutError: ``check`` was still False after ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)
