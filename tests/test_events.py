"""Events out, read by polling: ``read_events`` and its cursor, on every client and the Cluster.

Real events come from the ledger's own scripts: holds expired by moving the
test's clock (lazy expiry on a read), and settles with a shortfall. The suite's
Redis is shared with other tests, whose events are in the same outboxes, so
each test starts its cursor at the current end and looks at its own users only.
"""

from __future__ import annotations

import base64
import re
import threading
import zlib
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_fixtures import Clock

from credits import EventPage, LedgerEvent
from credits.errors import InvalidInputError
from credits.event_cursor import CURSOR_PREFIX, Cursor, decode_cursor, encode_cursor
from credits.events import EVENT_TYPES, check_event_filters, matches, parse_event_id
from credits.keys import bucket_of, user_keys
from credits.limits import BUCKET_COUNT, EVENTS_READ_LIMIT_MAX

EMIT = re.compile(r"emit\(\s*\w+\s*,\s*'([a-z0-9_.]+)'")


def cursor_at_end(ledger: Any) -> str:
    """A cursor past every event already in the outbox (other tests' included)."""
    page = ledger.read_events(limit=EVENTS_READ_LIMIT_MAX)
    while page:
        page = ledger.read_events(after=page.cursor, limit=EVENTS_READ_LIMIT_MAX)
    return str(page.cursor)


def read_all(ledger: Any, cursor: str, users: set[str], limit: int = 100) -> list[LedgerEvent]:
    """Every event after ``cursor`` of ``users``, page by page, until a page is empty."""
    found: list[LedgerEvent] = []
    while True:
        page = ledger.read_events(after=cursor, limit=limit)
        assert isinstance(page, EventPage) and len(page) <= limit
        found += [event for event in page if event.user_id in users]
        if not page:
            return found
        cursor = page.cursor


def expired_and_short(ledger: Any, clock: Clock, user: str) -> tuple[str, str]:
    """One reservation.expired and one settlement.shortfall for ``user``; their hold ids."""
    ledger.initialize_user(user, 100)
    expiring = ledger.reserve(user, 30, "video_generation", ttl=60)
    short = ledger.reserve(user, 50, "training_job", ttl=600)
    clock.advance(61)
    ledger.get_balance(user)  # lazy expiry writes the first event
    ledger.settle(short.id, 200)  # 50 held + 50 balance; 100 short
    return expiring.id, short.id


# --------------------------------------------------------------------------- types and ids


def test_every_type_a_script_emits_is_a_known_event_type() -> None:
    root = resources.files("credits").joinpath("lua")
    sources = [p.read_text("utf-8") for p in root.iterdir() if p.name.endswith(".lua")]
    sources += [
        p.read_text("utf-8") for p in root.joinpath("include").iterdir() if p.name.endswith(".lua")
    ]
    emitted = {kind for source in sources for kind in EMIT.findall(source)}
    assert {"reservation.expired", "settlement.shortfall"} <= emitted
    assert emitted <= EVENT_TYPES, f"add to credits.events.EVENT_TYPES: {emitted - EVENT_TYPES}"


def test_filters_accept_known_types_and_prefixes_and_refuse_typos() -> None:
    assert check_event_filters(None) is None
    assert check_event_filters(("settlement.shortfall", "reservation.*", "reservation.*")) == [
        "reservation.*",
        "settlement.shortfall",
    ]
    for bad in ([], "reservation.expired", ["reservation.expird"], ["nothing.*"], [3], 5):
        with pytest.raises(InvalidInputError):
            check_event_filters(bad)
    assert matches(None, "balance.below")
    assert matches(["balance.*"], "balance.below") and not matches(["balance.*"], "lot.expired")
    assert matches(["*"], "lot.expired")


def test_event_ids_parse_and_refuse_anything_else() -> None:
    assert parse_event_id("evt_12_1800000000000-3") == (12, "1800000000000-3")
    for bad in ("evt_1024_1-0", "evt_01_1-0", "evt_1_1-01", "evt_1_1", "rsv:x", 5, None):
        with pytest.raises(InvalidInputError):
            parse_event_id(bad)


# --------------------------------------------------------------------------- reading


def test_events_read_back_with_their_public_fields(ledger: Any, clock: Clock, user_id: str) -> None:
    start = cursor_at_end(ledger)
    expiring_id, short_id = expired_and_short(ledger, clock, user_id)
    events = read_all(ledger, start, {user_id})
    assert [event.type for event in events] == [
        "reservation.expired", "balance.depleted", "settlement.shortfall",
    ]  # fmt: skip
    expired, _, shortfall = events
    assert expired.data["reservation_id"] == expiring_id
    assert shortfall.data["reservation_id"] == short_id
    assert (shortfall.data["charged"], shortfall.data["shortfall"]) == (100, 100)
    assert expired.created_at == shortfall.created_at == clock.now_ms  # the ledger's time
    for event in events:
        bucket, _ = parse_event_id(event.id)
        assert bucket == bucket_of(user_id)
        assert "hold" not in event.data and "at" not in event.data
        assert event.data["tx_id"] in {tx.tx_id for tx in ledger.get_transactions(user_id)}
        assert set(event.model_dump()) == {"id", "type", "created_at", "user_id", "data"}
    # The same events, read again from the same cursor: the same ids (stable).
    assert [e.id for e in read_all(ledger, start, {user_id})] == [e.id for e in events]


def test_an_empty_page_keeps_the_cursor(ledger: Any) -> None:
    end = cursor_at_end(ledger)
    page = ledger.read_events(after=end)
    assert list(page) == [] and page.cursor == end


def test_a_backlog_in_one_bucket_does_not_starve_the_others(
    ledger: Any, clock: Clock, unique_user: Any
) -> None:
    """Each page is at most ``limit``; the other buckets are served in turn, not after it."""
    start = cursor_at_end(ledger)
    crowded = unique_user("crowded")
    ledger.initialize_user(crowded, 10_000)
    for _ in range(120):
        ledger.reserve(crowded, 1, "video_generation", ttl=60)
    others = []
    while len(others) < 5:
        other = unique_user("other")
        if bucket_of(other) != bucket_of(crowded):
            others.append(other)
            ledger.initialize_user(other, 10)
            ledger.reserve(other, 1, "video_generation", ttl=60)
    clock.advance(61)
    for user in [crowded, *others]:
        ledger.get_balance(user)
    seen: list[LedgerEvent] = []
    cursor = start
    for _ in range(8):  # 8 pages of 4 cannot hold the 120 of the crowded user
        page = ledger.read_events(after=cursor, limit=4)
        assert len(page) <= 4
        seen += [event for event in page if event.user_id in {crowded, *others}]
        cursor = page.cursor
    assert {event.user_id for event in seen} >= set(others)
    everything = seen + read_all(ledger, cursor, {crowded, *others}, limit=7)
    assert sum(event.user_id == crowded for event in everything) == 120
    assert len({event.id for event in everything}) == len(everything) == 125


def test_polling_while_writers_write_never_skips_nor_repeats(
    ledger: Any, clock: Clock, backend: Any, unique_user: Any
) -> None:
    """A reader with small pages, writers in another thread: every event once, in order per user."""
    start = cursor_at_end(ledger)
    users = [unique_user("poll") for _ in range(12)]
    holds_each = 8
    for user in users:
        ledger.initialize_user(user, 1000)
        for _ in range(holds_each):
            ledger.reserve(user, 1, "video_generation", ttl=60)
    clock.advance(61)
    done = threading.Event()

    def write() -> None:
        with backend.credits(clock=clock) as writer:
            for user in users:
                writer.get_balance(user)  # expires this user's holds: 8 events
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    seen: list[LedgerEvent] = []
    cursor = start
    while True:
        finished = done.is_set()
        page = ledger.read_events(after=cursor, limit=3)
        seen += [event for event in page if event.user_id in set(users)]
        cursor = page.cursor
        if finished and not page:
            break
    writer.join()
    assert len(seen) == len({event.id for event in seen}) == len(users) * holds_each
    for user in users:
        mine = [event for event in seen if event.user_id == user]
        ids = [parse_event_id(event.id)[1] for event in mine]
        assert ids == sorted(ids, key=lambda s: tuple(map(int, s.split("-"))))


def test_bad_cursors_and_limits_are_refused(ledger: Any) -> None:
    bomb = CURSOR_PREFIX + base64.urlsafe_b64encode(zlib.compress(b"\x01" * 10**6)).decode()
    tampered = encode_cursor(Cursor.beginning())[:-2] + "zz"
    for after in ("", "evt_1_1-0", "ec1_", "ec1_!!!", bomb, tampered, "ec1_" + "A" * 40_000, 5):
        with pytest.raises(InvalidInputError):
            ledger.read_events(after=after)
    for limit in (0, EVENTS_READ_LIMIT_MAX + 1, True, "5", None):
        with pytest.raises(InvalidInputError):
            ledger.read_events(limit=limit)


# --------------------------------------------------------------------------- the cursor itself

positions = st.one_of(
    st.none(),
    st.tuples(st.integers(0, 2**53 - 1), st.integers(0, 2**64 - 1)),
    st.tuples(st.integers(1_800_000_000_000, 1_800_000_600_000), st.integers(0, 3)),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(positions, min_size=BUCKET_COUNT, max_size=BUCKET_COUNT),
    st.integers(0, BUCKET_COUNT - 1),
)
def test_a_cursor_round_trips(values: list[Any], start: int) -> None:
    cursor = Cursor(positions=tuple(values), start=start)
    encoded = encode_cursor(cursor)
    assert decode_cursor(encoded) == cursor
    assert len(encoded) <= 32 * 1024


def test_a_busy_ledgers_cursor_is_a_few_kilobytes() -> None:
    base = 1_800_000_000_000
    busy = Cursor(positions=tuple((base + 997 * b % 600_000, b % 3) for b in range(BUCKET_COUNT)))
    assert len(encode_cursor(busy)) < 8 * 1024
    assert len(encode_cursor(Cursor.beginning())) < 64
    assert user_keys("x").outbox.endswith(":outbox")
