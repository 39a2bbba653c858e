"""The calendar of allowance periods and limit windows: Lua and its Python twin agree.

The scripts decide every period and window (``lua/include/calendar.lua``); the
Python twin (``credits.plans.calendar``) shows them to callers. These tests run
the Lua on the real server and hold the two together, on the dates that break
calendars: month ends, leap days, ISO weeks, the far past and future.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credits.plans.calendar import PERIODS, WINDOWS, add_months, period_of, window_of
from credits.scripts import assemble

DAY_MS = 86_400_000
YEAR_3000_MS = 32_503_680_000_000

_BODY = """--- @include "calendar"
local out = {}
for i, q in ipairs(cjson.decode(ARGV[3])) do
  local a, b
  if q[1] == 'add' then
    a = add_months(q[2], q[3])
  elseif q[1] == 'window' then
    a, b = window_of(q[2], q[3])
  else
    a, b = period_of(q[2], q[3], q[4])
  end
  out[i] = (a and string.format('%d', a) or 'nil') .. ',' .. (b and string.format('%d', b) or '')
end
return out
"""


@pytest.fixture(scope="module")
def lua(redis_url: str) -> Any:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    source = assemble(_BODY)

    def run(queries: list[list[Any]]) -> list[tuple[int | None, int | None]]:
        replies = client.eval(source, 0, "", "", json.dumps(queries))
        answers = []
        for reply in replies:
            first, _, second = reply.partition(",")
            answers.append(
                (None if first == "nil" else int(first), int(second) if second else None)
            )
        return answers

    yield run
    client.close()


def _ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def _python(query: list[Any]) -> tuple[int | None, int | None]:
    if query[0] == "add":
        return add_months(query[1], query[2]), None
    if query[0] == "window":
        return window_of(query[1], query[2])
    found = period_of(query[1], query[2], query[3])
    return (None, None) if found is None else found


def test_a_month_anchored_on_the_31st_renews_on_each_months_last_day(lua: Any) -> None:
    anchor = _ms(2027, 1, 31, 9, 30)
    starts = [add_months(anchor, k) for k in range(14)]
    shown = [datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M") for ms in starts]
    assert shown[:5] == [
        "2027-01-31 09:30", "2027-02-28 09:30", "2027-03-31 09:30", "2027-04-30 09:30",
        "2027-05-31 09:30",
    ]  # fmt: skip
    assert shown[13] == "2028-02-29 09:30"  # a leap year's February has a 29th
    assert [a for a, _ in lua([["add", anchor, k] for k in range(14)])] == starts


def test_periods_follow_the_anchor_not_the_previous_clamped_period(lua: Any) -> None:
    anchor = _ms(2027, 1, 31)
    in_march = _ms(2027, 3, 15)
    assert period_of("month", anchor, in_march) == (_ms(2027, 2, 28), _ms(2027, 3, 31))
    assert period_of("month", anchor, _ms(2027, 3, 31)) == (_ms(2027, 3, 31), _ms(2027, 4, 30))
    leap = _ms(2028, 2, 29, 12)
    assert period_of("year", leap, _ms(2029, 6, 1)) == (_ms(2029, 2, 28, 12), _ms(2030, 2, 28, 12))
    assert period_of("year", leap, _ms(2032, 3, 1)) == (_ms(2032, 2, 29, 12), _ms(2033, 2, 28, 12))
    assert period_of("week", anchor, anchor - 1) is None  # before the anchor: no period
    queries = [
        ["period", "month", anchor, in_march],
        ["period", "month", anchor, _ms(2027, 3, 31)],
        ["period", "year", leap, _ms(2029, 6, 1)],
        ["period", "week", anchor, anchor - 1],
    ]
    assert lua(queries) == [_python(q) for q in queries]


def test_limit_windows_are_calendar_windows(lua: Any) -> None:
    wednesday = _ms(2027, 3, 3, 17, 45, 12)
    assert window_of("hour", wednesday) == (_ms(2027, 3, 3, 17), _ms(2027, 3, 3, 18))
    assert window_of("day", wednesday) == (_ms(2027, 3, 3), _ms(2027, 3, 4))
    assert window_of("week", wednesday) == (_ms(2027, 3, 1), _ms(2027, 3, 8))  # ISO: Monday
    assert window_of("month", wednesday) == (_ms(2027, 3, 1), _ms(2027, 4, 1))
    assert window_of("month", _ms(2028, 2, 10)) == (_ms(2028, 2, 1), _ms(2028, 3, 1))
    assert window_of("week", _ms(2027, 3, 1)) == (_ms(2027, 3, 1), _ms(2027, 3, 8))
    assert window_of("week", _ms(2027, 2, 28, 23, 59)) == (_ms(2027, 2, 22), _ms(2027, 3, 1))
    queries = [["window", every, wednesday] for every in WINDOWS]
    assert lua(queries) == [_python(q) for q in queries]


instants = st.integers(min_value=0, max_value=YEAR_3000_MS)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    queries=st.lists(
        st.one_of(
            st.tuples(st.just("add"), instants, st.integers(0, 2400)),
            st.tuples(st.just("window"), st.sampled_from(WINDOWS), instants),
            st.tuples(st.just("period"), st.sampled_from(PERIODS), instants, instants),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_the_lua_calendar_and_its_python_twin_agree_everywhere(
    lua: Any, queries: list[tuple[Any, ...]]
) -> None:
    as_lists = [list(q) for q in queries]
    assert lua(as_lists) == [_python(q) for q in as_lists]


def test_every_period_starts_where_the_last_one_ended() -> None:
    anchor = _ms(2024, 1, 31, 23, 59)
    for every in PERIODS:
        moment, previous_end = anchor, None
        for _ in range(30):
            found = period_of(every, anchor, moment)
            assert found is not None
            start, end = found
            assert start <= moment < end
            assert previous_end is None or start == previous_end
            previous_end, moment = end, end
