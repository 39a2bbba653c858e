"""UTC calendar arithmetic on Unix ms: the twin of ``lua/include/calendar.lua``.

Periods of an allowance start at its anchor and repeat every day, week, month
or year; a month period anchored on the 31st starts on the last day of shorter
months (the 30th, Feb 28 or 29), always counted from the anchor, so it comes
back to the 31st when a month has one. Limit windows are calendar windows:
the hour, the day, the ISO week (from Monday 00:00) and the month. The standard
library does it cleanly (``calendar.monthrange``, ``datetime``), so no date
library is needed; the tests check every function against this one and the Lua.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000
Every = Literal["day", "week", "month", "year"]
Window = Literal["hour", "day", "week", "month"]
PERIODS: Final[tuple[Every, ...]] = ("day", "week", "month", "year")
WINDOWS: Final[tuple[Window, ...]] = ("hour", "day", "week", "month")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _datetime(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def add_months(anchor_ms: int, months: int) -> int:
    """``anchor_ms`` moved on by ``months`` months, the day clamped to the month's last."""
    moment = _datetime(anchor_ms)
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return _ms(moment.replace(year=year, month=month + 1, day=day))


def window_of(every: Window, ms: int) -> tuple[int, int]:
    """The calendar window holding ``ms``, as (start, end) Unix ms."""
    if every == "hour":
        start = ms // HOUR_MS * HOUR_MS
        return start, start + HOUR_MS
    days = ms // DAY_MS
    if every == "day":
        return days * DAY_MS, (days + 1) * DAY_MS
    if every == "week":
        monday = days - (days + 3) % 7  # 1970-01-01 was a Thursday
        return monday * DAY_MS, (monday + 7) * DAY_MS
    moment = _datetime(ms)
    start = _ms(datetime(moment.year, moment.month, 1, tzinfo=UTC))
    return start, add_months(start, 1)


def period_of(every: Every, anchor_ms: int, ms: int) -> tuple[int, int] | None:
    """The period of an allowance anchored at ``anchor_ms`` that holds ``ms``; None before it."""
    if ms < anchor_ms:
        return None
    if every in ("day", "week"):
        length = DAY_MS if every == "day" else 7 * DAY_MS
        start = anchor_ms + (ms - anchor_ms) // length * length
        return start, start + length
    step = 12 if every == "year" else 1
    anchor, moment = _datetime(anchor_ms), _datetime(ms)
    k = ((moment.year - anchor.year) * 12 + (moment.month - anchor.month)) // step
    while k > 0 and add_months(anchor_ms, k * step) > ms:
        k -= 1
    while add_months(anchor_ms, (k + 1) * step) <= ms:
        k += 1
    return add_months(anchor_ms, k * step), add_months(anchor_ms, (k + 1) * step)
