"""The retry schedule, its setting, lane and pause records, and the signature, without I/O.

The worker tests (tests/test_webhook_workers.py) and the in-process delivery
tests (tests/test_webhook_delivery.py) show these at work; here each rule is
held on its own, so a change to one shows up as that rule.
"""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook

from credits.events import SEQUENCE_MAX
from credits.webhooks.lanes import Lane, Pause, decode_lanes
from credits.webhooks.registry import new_secret
from credits.webhooks.schedule import (
    RETRY_S_DEFAULT,
    Schedule,
    after_failure,
    parse_schedule,
    past_window,
)
from credits.webhooks.sender import signed_headers
from credits.webhooks.settings import WebhookSettings

DAY_MS = 24 * 60 * 60 * 1000


def test_the_default_schedule_retries_for_more_than_a_day() -> None:
    schedule = Schedule.from_seconds(parse_schedule(RETRY_S_DEFAULT))
    assert schedule.window_ms >= DAY_MS
    assert schedule.delays_ms[0] == 5000


@pytest.mark.parametrize("text", ["", "5,,10", "5,x", "0", "-1", "nan", "inf", "1e9",
                                  ",".join(["1"] * 33)])  # fmt: skip
def test_bad_schedules_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_schedule(text)


def test_the_setting_is_parsed_and_refused_when_bad(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITS_WEBHOOK_RETRY_S", " 0.5, 2 ,10")
    assert WebhookSettings().schedule().delays_ms == (500, 2000, 10_000)
    monkeypatch.setenv("CREDITS_WEBHOOK_RETRY_S", "soon")
    with pytest.raises(ValidationError):
        WebhookSettings()
    monkeypatch.setenv("CREDITS_WEBHOOK_RETRY_S", "1")
    monkeypatch.setenv("CREDITS_EVENT_RETENTION_S", "-1")
    with pytest.raises(ValidationError):
        WebhookSettings()


def test_each_failure_waits_the_next_delay_and_the_last_is_parked() -> None:
    schedule = Schedule((1000, 2000, 4000))
    written = 0
    first = after_failure(schedule, 1, written, now_ms=0)
    assert (first.parked, first.next_at_ms) == (False, 1000)
    second = after_failure(schedule, 2, written, now_ms=1000)
    assert (second.parked, second.next_at_ms) == (False, 3000)
    third = after_failure(schedule, 3, written, now_ms=3000)
    assert (third.parked, third.next_at_ms) == (False, 7000)
    assert after_failure(schedule, 4, written, now_ms=6999).parked  # attempts used up


def test_an_event_past_its_window_is_parked_at_its_first_failure() -> None:
    """Queued behind a failing event for longer than the schedule: no second day of retries."""
    schedule = Schedule((1000, 2000, 4000))
    assert past_window(schedule, written_ms=0, now_ms=7000)
    assert after_failure(schedule, 1, written_ms=0, now_ms=7000).parked
    assert not after_failure(schedule, 1, written_ms=1, now_ms=7000).parked


def test_the_last_delay_repeats_for_pauses() -> None:
    schedule = Schedule((1000, 2000))
    assert [schedule.delay_ms(n) for n in (0, 1, 2, 3, 10)] == [1000, 1000, 2000, 2000, 2000]


def test_lanes_and_pauses_round_trip_and_damage_starts_over() -> None:
    lane = Lane(position=(1_800_000_000_000, 3), failures=2, not_before_ms=99)
    assert Lane.decode(lane.encode()) == lane
    assert Lane.decode("garbage") == Lane()  # delivers again rather than skipping
    assert decode_lanes({"7": lane.encode(), "note": "x"}) == {7: lane}
    assert Pause.decode(Pause(3, 1234).encode()) == Pause(3, 1234)
    assert Pause.decode(None) == Pause.decode("x|y") == Pause()


def test_a_new_lane_starts_at_the_endpoints_creation() -> None:
    fresh = Lane()
    assert fresh.start(created_ms=5000) == (4999, SEQUENCE_MAX)  # everything from 5000-0 on
    assert fresh.trim_floor(created_ms=5000) == (5000, 0)
    assert Lane(position=(7, 2)).trim_floor(created_ms=0) == (7, 3)


def test_the_signature_is_standard_webhooks() -> None:
    secret = new_secret()
    body = '{"id":"evt_1_1-0","type":"reservation.expired"}'
    headers = signed_headers(secret, "evt_1_1-0", body, time.time())
    verified = Webhook(secret).verify(body, headers)
    assert verified == {"id": "evt_1_1-0", "type": "reservation.expired"}
    assert headers["webhook-id"] == "evt_1_1-0"
    assert headers["webhook-signature"].startswith("v1,")
