"""Short leases in Redis: one delivery run per endpoint, one dispatcher tick at a time.

A lease is ``SET key token NX PX ttl``; it is given back only by its holder
(``webhook_release.lua`` compares the token), and its ttl is longer than the
hard time limit of the work it guards, so a live holder never loses it and a
dead one's expires. Two runs of one endpoint at once would deliver its lanes
out of order; two ticks at once would only do the same work twice.
"""

from __future__ import annotations

import secrets

from credits.protocol import Command, Steps, run_script
from credits.scripts import script


def acquire(key: str, ttl_ms: int) -> Steps[str | None]:
    """A fresh token if the lease was free (now ours for ``ttl_ms``), else None."""
    token = secrets.token_hex(12)
    taken = yield Command(("SET", key, token, "NX", "PX", max(1, int(ttl_ms))))
    return token if taken else None


def release(key: str, token: str) -> Steps[bool]:
    """Give the lease back if it is still ours; whether it was."""
    reply = yield from run_script(script("webhook_release"), [key], ["0", "", token])
    return bool(reply and reply[0] == "ok" and int(reply[1]) == 1)
