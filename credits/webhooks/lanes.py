"""Delivery positions: one lane per (endpoint, bucket), delivered in stream order.

A user's events all go to the outbox of the user's bucket, in the order they
happened, so delivering each bucket's stream in order, one event at a time,
delivers every user's events in order. That is a *lane*: the endpoint's
position in one bucket (the last event delivered or parked), how many times
its next event has failed, and when it may be tried again. An event that
fails holds up its lane only (head-of-line blocking per bucket: about 1/1,024
of the users), never the endpoint's other lanes nor other endpoints.

Lanes of an endpoint are one hash (``credits:{wh:<id>}:lanes``, field = bucket,
value ``"<last id>|<failures>|<not before ms>"``); a bucket with no field
starts at the endpoint's ``created_at``: an endpoint receives what is written
after it was added. Positions only move forward over stream ids, which only
grow, so (as for the read cursor, :mod:`credits.event_cursor`) no event is
skipped; they are written after the round that delivered them, so a worker
that dies mid-round delivers that round again (at least once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from credits.events import SEQUENCE_MAX, StreamId, format_stream_id, parse_stream_id

_SEPARATOR: Final = "|"


@dataclass(frozen=True, slots=True)
class Lane:
    """One endpoint's state in one bucket."""

    position: StreamId | None = None  # last event delivered or parked; None: nothing yet
    failures: int = 0  # failed attempts of the event after ``position``
    not_before_ms: int = 0  # when that event may be tried again

    def encode(self) -> str:
        shown = "" if self.position is None else format_stream_id(self.position)
        return f"{shown}{_SEPARATOR}{self.failures}{_SEPARATOR}{self.not_before_ms}"

    @classmethod
    def decode(cls, raw: str) -> Lane:
        """A stored lane; a damaged value starts over from nothing (delivers again, never skips)."""
        try:
            shown, failures, not_before = raw.split(_SEPARATOR)
            position = parse_stream_id(shown) if shown else None
            return cls(position=position, failures=int(failures), not_before_ms=int(not_before))
        except ValueError:
            return cls()

    def start(self, created_ms: int) -> StreamId:
        """The last id this lane has handled: its position, or just before the endpoint existed."""
        if self.position is not None:
            return self.position
        return (max(created_ms - 1, 0), SEQUENCE_MAX)

    def trim_floor(self, created_ms: int) -> StreamId:
        """The smallest id this lane still needs (the outbox may drop everything below it)."""
        ms, seq = self.start(created_ms)
        return (ms + 1, 0) if seq >= SEQUENCE_MAX else (ms, seq + 1)


def decode_lanes(stored: dict[str, str] | None) -> dict[int, Lane]:
    """An HGETALL of an endpoint's lanes, by bucket (fields that are not buckets ignored)."""
    lanes: dict[int, Lane] = {}
    for field, raw in (stored or {}).items():
        if field.isdigit():
            lanes[int(field)] = Lane.decode(raw)
    return lanes


@dataclass(frozen=True, slots=True)
class Pause:
    """An endpoint found down: how many runs in a row found it so, and until when it rests."""

    streak: int = 0
    until_ms: int = 0

    def encode(self) -> str:
        return f"{self.streak}{_SEPARATOR}{self.until_ms}"

    @classmethod
    def decode(cls, raw: str | None) -> Pause:
        if not raw:
            return cls()
        try:
            streak, until = raw.split(_SEPARATOR)
            return cls(streak=int(streak), until_ms=int(until))
        except ValueError:
            return cls()
