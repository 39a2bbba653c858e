"""``read_events``: the outbox of all 1,024 buckets, read forward with a cursor that never skips.

Why a position per bucket. Each bucket's outbox is its own stream, and on a
Cluster the buckets live on nodes with different clocks; a single timestamp or
event id cannot say "everything before this was seen" across them. What Redis
does guarantee is that the ids of *one* stream only grow: ``XADD *`` takes the
larger of the server's millisecond and the stream's last id and bumps the
sequence, and the last id survives trimming. So the cursor keeps, for every
bucket, the id of the last event it returned from it. The next read returns,
per bucket, only entries after that id, in stream order. An entry written
after a read has an id above every id that read could see in its stream, so it
can never fall at or below a position: no event is skipped, whatever the
clocks do (a clock stepping back, nodes minutes apart, a bucket migrating to
another node with its stream). Only trimming (the retention, or the per-bucket
cap when nothing reads for long) can remove an event before a slow reader
gets to it.

Bounded work per call: a probe asks every bucket for its first new entry (one
``XREAD`` of the 1,024 streams on a single Redis, one ``XRANGE`` per bucket in a
pipeline on a Cluster, where every bucket is its own slot); then at most
``limit`` more entries are read, shared among the buckets that have news. A
call reads at most ``limit + 1024`` entries, however large the backlog.

Fairness: the cursor also remembers where the last call stopped, and each
call serves buckets from there on, so under a backlog larger than ``limit``
every bucket gets its turn.

Compactness: positions are written as varints relative to the smallest one
(buckets never read cost one byte), then zlib and base64url: a few hundred
bytes for a small ledger, a few KB when every bucket is busy.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from credits import limits
from credits.errors import InvalidInputError
from credits.events import SEQUENCE_MAX, StreamId, format_stream_id, parse_entry, parse_stream_id
from credits.keys import outbox_key
from credits.models import EventPage, LedgerEvent
from credits.protocol import Batch, Command, Steps, batch_values
from credits.validation import check_limit

CURSOR_PREFIX: Final = "ec1_"
_VERSION: Final = 1
_BUCKETS: Final = limits.BUCKET_COUNT
_KEYS: Final = tuple(outbox_key(bucket) for bucket in range(_BUCKETS))
_BUCKET_OF_KEY: Final = {key: bucket for bucket, key in enumerate(_KEYS)}


@dataclass(frozen=True, slots=True)
class Cursor:
    """Per bucket, the last stream id returned from it (None: nothing yet); where to start."""

    positions: tuple[StreamId | None, ...]
    start: int = 0

    @classmethod
    def beginning(cls) -> Cursor:
        return cls(positions=(None,) * _BUCKETS)


# ---------------------------------------------------------------- encoding


def _varint(value: int, out: bytearray) -> None:
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def varint(self) -> int:
        value = shift = 0
        while True:
            if self._at >= len(self._data) or shift > 70:
                raise ValueError("truncated varint")
            byte = self._data[self._at]
            self._at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def done(self) -> bool:
        return self._at == len(self._data)


def encode_cursor(cursor: Cursor) -> str:
    set_ms = [pos[0] for pos in cursor.positions if pos is not None]
    base = min(set_ms) if set_ms else 0
    out = bytearray([_VERSION])
    _varint(cursor.start, out)
    _varint(base, out)
    for pos in cursor.positions:
        if pos is None:
            out.append(0)
            continue
        ms, seq = pos
        _varint(((ms - base + 1) << 1) | (1 if seq else 0), out)
        if seq:
            _varint(seq, out)
    packed = zlib.compress(bytes(out), 9)
    return CURSOR_PREFIX + base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def _refuse(reason: str) -> InvalidInputError:
    return InvalidInputError(f"after is not a cursor from read_events ({reason}); pass page.cursor")


def _inflate(packed: bytes) -> bytes:
    inflater = zlib.decompressobj()
    data = inflater.decompress(packed, limits.EVENT_CURSOR_BYTES_MAX)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("too long, or truncated")
    return data


def decode_cursor(value: object) -> Cursor:
    """The cursor ``value`` stands for; None is the beginning of the outbox."""
    if value is None:
        return Cursor.beginning()
    if not isinstance(value, str):
        raise InvalidInputError(f"after must be a cursor str or None, got {type(value).__name__}")
    if len(value) > limits.EVENT_CURSOR_CHARS_MAX:
        raise _refuse(f"longer than {limits.EVENT_CURSOR_CHARS_MAX} characters")
    if not value.startswith(CURSOR_PREFIX):
        raise _refuse("no ec1_ prefix")
    body = value[len(CURSOR_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        if base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != body:
            raise ValueError("not canonical base64url")
        return _parse(_inflate(raw))
    except (ValueError, binascii.Error, zlib.error, UnicodeError) as exc:
        raise _refuse(str(exc)[:80]) from None


def _parse(data: bytes) -> Cursor:
    if not data or data[0] != _VERSION:
        raise ValueError("unknown version")
    reader = _Reader(data[1:])
    start, base = reader.varint(), reader.varint()
    if start >= _BUCKETS or base > limits.AMOUNT_MAX:
        raise ValueError("out of range")
    positions: list[StreamId | None] = []
    for _ in range(_BUCKETS):
        packed = reader.varint()
        if packed == 0:
            positions.append(None)
            continue
        ms = base + (packed >> 1) - 1
        seq = reader.varint() if packed & 1 else 0
        if ms > limits.AMOUNT_MAX or seq > SEQUENCE_MAX or (packed & 1 and seq == 0):
            raise ValueError("position out of range")
        positions.append((ms, seq))
    if not reader.done():
        raise ValueError("trailing bytes")
    return Cursor(positions=tuple(positions), start=start)


# ---------------------------------------------------------------- reading


def _rotation(start: int) -> Iterator[int]:
    """Buckets from ``start`` on, wrapping around."""
    for offset in range(_BUCKETS):
        yield (start + offset) % _BUCKETS


def _after(position: StreamId | None) -> str:
    """The XRANGE start just after ``position`` (exclusive), or the stream's beginning."""
    return "-" if position is None else f"({format_stream_id(position)}"


def _xread_after(position: StreamId | None) -> str:
    """XREAD's "after this id" for ``position`` (0-0 is before every entry)."""
    return "0-0" if position is None else format_stream_id(position)


Entry = tuple[str, dict[str, str]]


def first_entries(
    positions: Mapping[int, StreamId | None], cluster: bool
) -> Steps[dict[int, Entry]]:
    """Each given bucket's first entry after its position (buckets with nothing new are absent).

    One XREAD of all the streams on a single Redis; on a Cluster every bucket is
    its own slot, so one XRANGE per bucket, pipelined (one round trip per node).
    """
    buckets = sorted(positions)
    if not buckets:
        return {}
    if not cluster:
        ids = [_xread_after(positions[b]) for b in buckets]
        reply = yield Command(("XREAD", "COUNT", 1, "STREAMS", *(_KEYS[b] for b in buckets), *ids))
        found: dict[int, Entry] = {}
        for key, entries in _xread_streams(reply):
            if entries:
                found[_BUCKET_OF_KEY[key]] = entries[0]
        return found
    replies = batch_values(
        (
            yield Batch(
                tuple(
                    Command(("XRANGE", _KEYS[b], _after(positions[b]), "+", "COUNT", 1))
                    for b in buckets
                )
            )
        )
    )
    return {bucket: entries[0] for bucket, entries in zip(buckets, replies, strict=True) if entries}


def entries_after(firsts: Mapping[int, Entry], count: int) -> Steps[dict[int, list[Entry]]]:
    """Up to ``count`` entries after each bucket's first one, in one pipeline."""
    order = list(firsts)
    if not order or count < 1:
        return {bucket: [] for bucket in order}
    replies = batch_values(
        (
            yield Batch(
                tuple(
                    Command(("XRANGE", _KEYS[b], f"({firsts[b][0]}", "+", "COUNT", count))
                    for b in order
                )
            )
        )
    )
    return dict(zip(order, replies, strict=True))


def _xread_streams(reply: Any) -> list[tuple[str, list[Entry]]]:
    """XREAD's reply as (key, entries): a list of pairs (RESP2) or a dict (RESP3), or None."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(key, value[0] if value and isinstance(value[0], list) else value)
                for key, value in reply.items()]  # fmt: skip
    return [(key, entries) for key, entries in reply]


def read_events(after: object, limit: object, *, cluster: bool) -> Steps[EventPage]:
    """The next page of events after ``after``; see the module docstring for why it is complete."""
    count = check_limit(limit, limits.EVENTS_READ_LIMIT_MAX)
    cursor = decode_cursor(after)
    firsts = yield from first_entries(dict(enumerate(cursor.positions)), cluster)
    order = [bucket for bucket in _rotation(cursor.start) if bucket in firsts]
    taken: dict[int, list[Entry]] = {}
    if len(order) >= count:
        for bucket in order[:count]:
            taken[bucket] = [firsts[bucket]]
    elif order:
        share = -(-(count - len(order)) // len(order))
        more = yield from entries_after({b: firsts[b] for b in order}, share)
        room = count
        for bucket in order:
            entries = [firsts[bucket], *more[bucket]][:room]
            room -= len(entries)
            if entries:
                taken[bucket] = entries
    return _page(cursor, taken)


def _page(cursor: Cursor, taken: dict[int, list[Entry]]) -> EventPage:
    positions = list(cursor.positions)
    events: list[tuple[StreamId, int, LedgerEvent]] = []
    for bucket, entries in taken.items():
        for entry_id, fields in entries:
            event = parse_entry(bucket, entry_id, fields)
            if event is not None:
                events.append((parse_stream_id(entry_id), bucket, event))
        positions[bucket] = parse_stream_id(entries[-1][0])
    start = cursor.start
    if taken:
        served = max(taken, key=lambda b: (b - cursor.start) % _BUCKETS)
        start = (served + 1) % _BUCKETS
    # Stream order within a bucket (so per user); buckets interleaved by their ids.
    events.sort(key=lambda item: (item[0], item[1]))
    next_cursor = encode_cursor(Cursor(positions=tuple(positions), start=start))
    return EventPage([event for _, _, event in events], next_cursor)
