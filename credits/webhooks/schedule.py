"""When a failed delivery is tried again, and when it is given up and parked.

``CREDITS_WEBHOOK_RETRY_S`` is the schedule: comma-separated delays in seconds
between attempts. The default, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, sums
to 27 h 35 min 5 s (at least a day, as promised), in eight attempts.

An event's **window** is the schedule's sum, counted from when it was written.
After a failed attempt the event waits the next delay of the schedule, and is
parked (kept aside, listed by ``credits webhooks failed``, retried by
``credits webhooks retry``) when either its attempts are used up or its window
has passed. The window matters for events queued behind a failing one (a lane
delivers in order, see :mod:`~credits.webhooks.lanes`): they have been waiting
all along, so after a day-long outage they are not given another day each,
one after the other; once their window is over, one more failed attempt parks
them.

An endpoint that does not answer at all (refused connections, timeouts) is
**paused** as a whole, with the same delays by how many runs in a row found it
down, so a dead endpoint costs one run's few timeouts per delay rather than
one timeout per lane. A paused endpoint's events past their window are parked
without attempts, so its backlog drains even if it never comes back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from credits import limits

RETRY_S_DEFAULT: Final = "5,300,1800,7200,18000,36000,36000"


def parse_schedule(text: str) -> tuple[float, ...]:
    """The delays of ``text`` ("5,300,1800"), each > 0; ValueError naming what is wrong."""
    parts = [part.strip() for part in text.split(",")]
    if not parts or any(not part for part in parts):
        raise ValueError("the retry schedule is comma-separated delays in seconds, e.g. 5,300,1800")
    if len(parts) > limits.WEBHOOK_RETRY_STEPS_MAX:
        raise ValueError(f"the retry schedule has at most {limits.WEBHOOK_RETRY_STEPS_MAX} steps")
    delays: list[float] = []
    for part in parts:
        try:
            delay = float(part)
        except ValueError:
            raise ValueError(f"retry delay {part[:20]!r} is not a number of seconds") from None
        if not math.isfinite(delay) or not 0 < delay <= limits.WEBHOOK_RETRY_STEP_S_MAX:
            raise ValueError(
                f"retry delay {part[:20]!r} must be > 0 and at most "
                f"{limits.WEBHOOK_RETRY_STEP_S_MAX} s"
            )
        delays.append(delay)
    return tuple(delays)


@dataclass(frozen=True, slots=True)
class Schedule:
    """The delays between attempts, in ms."""

    delays_ms: tuple[int, ...]

    @classmethod
    def from_seconds(cls, delays_s: tuple[float, ...]) -> Schedule:
        return cls(tuple(max(1, round(delay * 1000)) for delay in delays_s))

    @property
    def window_ms(self) -> int:
        return sum(self.delays_ms)

    def delay_ms(self, failures: int) -> int:
        """The wait after the ``failures``-th failure in a row (1-based), the last one repeating."""
        return self.delays_ms[min(max(failures, 1), len(self.delays_ms)) - 1]


@dataclass(frozen=True, slots=True)
class AfterFailure:
    """What a failed attempt leads to: parked, or tried again at ``next_at_ms``."""

    parked: bool
    failures: int
    next_at_ms: int


def after_failure(schedule: Schedule, failures: int, written_ms: int, now_ms: int) -> AfterFailure:
    """The event's fate after its ``failures``-th failed attempt (``failures`` counts this one)."""
    used_up = failures > len(schedule.delays_ms)
    window_over = now_ms >= written_ms + schedule.window_ms
    if used_up or window_over:
        return AfterFailure(parked=True, failures=failures, next_at_ms=0)
    return AfterFailure(
        parked=False, failures=failures, next_at_ms=now_ms + schedule.delay_ms(failures)
    )


def past_window(schedule: Schedule, written_ms: int, now_ms: int) -> bool:
    """Whether an event written at ``written_ms`` has had its whole window."""
    return now_ms >= written_ms + schedule.window_ms
