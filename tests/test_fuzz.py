"""Hypothesis throws bad input at every public method of both clients.

For every call: nothing but a :class:`CreditsError` escapes; a refused call
writes nothing anywhere (the whole store's ``DEBUG DIGEST`` is unchanged); no
call, refused or not, changes a sentinel user's keys (no generated input
names the sentinel, so any change would be a leak between users); and a valid
call made afterwards works. test_bad_input.py has the hand-picked cases; this
is the generated search around them: any text for ids (braces, control
characters, lone surrogates, 10 kB), any int/float/bool/str/None for numbers,
nested, huge and non-JSON metadata, mutated reservation ids, odd times.

The store is a server of this module's own, so the digest sees every key.
``--slow`` (or CREDITS_SLOW_TESTS=1) runs ten times more examples.
"""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_fixtures import Clock, make_ledger

from credits import AsyncCredits, BulkItem, Credits
from credits.errors import CreditsError
from credits.keys import user_keys
from credits.limits import AMOUNT_MAX
from credits.redis_server import RedisServer

SLOW = os.environ.get("CREDITS_SLOW_TESTS") == "1"
EXAMPLES = 600 if SLOW else 60

PLAYERS = [f"player-{i}-{uuid.uuid4().hex[:8]}" for i in range(3)]

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

# --------------------------------------------------------------------------- strategies

non_str = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
nasty_chars = st.characters(categories=["Cc", "Cs", "Cf", "Zs", "Zl"])
huge_text = st.builds(lambda ch, n: ch * n, st.characters(), st.integers(200, 10_240))
any_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="{}:%*?[]\\ \x00\n\x7f", max_size=20),
    st.text(alphabet=nasty_chars, min_size=1, max_size=10),
    huge_text,
)
user_ids = st.one_of(any_text, non_str, st.sampled_from(PLAYERS))
actions = st.one_of(st.sampled_from(["chat_message", "video_generation"]), any_text, non_str)
numbers = st.one_of(
    st.integers(),
    st.sampled_from([0, 1, 2, AMOUNT_MAX, AMOUNT_MAX + 1, -1, 2**64]),
    st.floats(),
    st.booleans(),
    st.text(max_size=6),
    st.none(),
    st.decimals(allow_nan=True),
    st.fractions(),
    st.complex_numbers(),
)
amounts = st.one_of(numbers, st.integers(min_value=1, max_value=50))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


def _circular() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


def _deep(depth: int) -> dict[str, Any]:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return {"deep": value}


metadata = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    st.builds(lambda n: {"big": "x" * n}, st.integers(8000, 20_000)),
    st.builds(_deep, st.integers(10, 5000)),
    st.builds(_circular),
    st.sampled_from(
        [
            {"set": {1}},
            {"bytes": b"x"},
            {"obj": object()},
            {(1, 2): "tuple key"},
            {"nan": float("nan")},
            {"\ud800": 1},
            {"n": 10**5000},
        ]
    ),
    json_values,
    non_str,
)
ttls = st.one_of(
    numbers,
    st.timedeltas(),
    st.sampled_from([1, 60, 30 * 24 * 3600, 30 * 24 * 3600 + 1, timedelta(days=30)]),
)
limits_ = st.one_of(numbers, st.integers(min_value=1, max_value=1000))
times = st.one_of(numbers, st.integers(min_value=0, max_value=2 * 10**12))
tx_ids = st.one_of(
    st.none(),
    any_text,
    non_str,
    st.sampled_from(["0-0", "01-0", "1-01", "-1-0", "1", "1-", "1700000000000-0", "9" * 30 + "-0"]),
    st.builds(lambda a, b: f"{a}-{b}", st.integers(-5, 2**70), st.integers(-5, 2**70)),
)
keys = st.one_of(st.none(), any_text, non_str)
statuses = st.one_of(
    st.none(), st.sampled_from(["open", "settled", "released", "expired"]), any_text
)
batch_sizes = st.one_of(numbers, st.integers(min_value=1, max_value=1000))
instants = st.one_of(
    numbers,
    st.datetimes(),  # naive: refused
    st.datetimes(timezones=st.timezones()),
    st.integers(min_value=-(2**60), max_value=2**60),
)
durations = st.one_of(numbers, st.timedeltas(), st.integers(min_value=-(10**12), max_value=10**12))
categories = st.one_of(
    st.sampled_from(["paid", "promotional", "refund", "allowance", "rollover", "Paid"]), non_str
)
scopes = st.one_of(
    st.none(),
    non_str,
    any_text,
    st.lists(actions, max_size=40),
    st.lists(st.sampled_from(["chat", "video"]), min_size=1, max_size=3),
)
lot_statuses = st.one_of(
    st.none(), st.sampled_from(["pending", "active", "exhausted", "expired", "voided"]), any_text
)


def _mutate(rid: str, position: int, char: str) -> str:
    position %= len(rid)
    return rid[:position] + char + rid[position + 1 :]


def reservation_ids(real: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        any_text,
        non_str,
        st.sampled_from(real),
        st.builds(_mutate, st.sampled_from(real), st.integers(0, 80), st.characters()),
        st.builds(lambda r: r.replace("{b", "{b1"), st.sampled_from(real)),
        st.builds(
            lambda b, u, h: f"rsv:{{b{b}}}:{u}:{h}",
            st.integers(-1, 99_999),
            st.text(max_size=12),
            st.text(alphabet="0123456789abcdef", max_size=21),
        ),
    )


def lot_ids(real: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        any_text,
        non_str,
        st.sampled_from(real),
        st.builds(_mutate, st.sampled_from(real), st.integers(0, 80), st.characters()),
        st.builds(lambda r: r.replace("lot:", "rsv:"), st.sampled_from(real)),
        st.builds(
            lambda b, u, h: f"lot:{{b{b}}}:{u}:{h}",
            st.integers(-1, 99_999),
            st.text(max_size=12),
            st.text(alphabet="0123456789abcdef", max_size=11),
        ),
    )


bulk_items = st.builds(BulkItem, user_ids, amounts, actions, metadata, keys)
bulks = st.one_of(
    st.lists(bulk_items, max_size=4),
    st.lists(
        st.builds(BulkItem, st.sampled_from(PLAYERS), st.integers(1, 5), st.just("chat")),
        max_size=4,
    ),
    st.lists(non_str, min_size=1, max_size=3),
    non_str,
    st.just([BulkItem(PLAYERS[0], 1, "chat")] * 1001),
    st.text(max_size=5),
)
progress = st.one_of(st.none(), non_str, st.just(lambda done, total: None))
cursors = st.one_of(
    st.none(),
    any_text,
    non_str,
    st.builds(lambda tail: "ec1_" + tail, st.text(alphabet="AZaz09-_=", max_size=60)),
    st.sampled_from(["ec1_", "evt_1_1-0", "ec1_eJwLycgsVgCixLxShZzM4tJUhfyiFAA"]),
)
# URLs a guard must refuse without any DNS lookup: IP literals, wrong schemes, credentials.
REFUSED_URLS = [
    "http://127.0.0.1:8080/hook", "http://[::1]/", "http://10.1.2.3/", "http://0.0.0.0/",
    "http://169.254.169.254/latest/meta-data", "http://[::ffff:127.0.0.1]/",
    "http://100.64.0.1/", "ftp://93.184.216.34/", "file:///etc/passwd",
    "http://user:pw@93.184.216.34/", "http://93.184.216.34:0/", "https://", "http:///x",
    "gopher://93.184.216.34:6379/_FLUSHALL", "http://93.184.216.34/" + "x" * 3000,
]  # fmt: skip
webhook_urls = st.one_of(
    any_text,
    non_str,
    st.sampled_from(REFUSED_URLS),
)
event_filters = st.one_of(
    st.none(),
    non_str,
    st.lists(st.one_of(any_text, st.sampled_from(["reservation.*", "nothing.*", "*"])), max_size=3),
    st.just(["settlement.shortfall"] * 40),
)
secrets_ = st.one_of(
    st.none(), any_text, non_str, st.sampled_from(["whsec_", "whsec_AAAA", "whsec_!!", "x" * 300])
)
endpoint_ids = st.one_of(any_text, non_str, st.sampled_from(["we_", "we_0123456789abcdeg"]))
plan_names = st.one_of(
    any_text, non_str, st.sampled_from(["monthly", "daily", "*", "a b", "x" * 65, "ok.name-1"])
)
periods = st.one_of(st.sampled_from(["day", "week", "month", "year", "hour", "Month"]), non_str)
windows = st.one_of(st.sampled_from(["hour", "day", "week", "month", "year", "Day"]), non_str)
effectives = st.one_of(st.sampled_from(["now", "next_period", "later"]), non_str)
topup_ids = st.one_of(
    any_text,
    non_str,
    st.builds(
        lambda b, u, t: f"top:{{b{b}}}:{u}:{t}",
        st.integers(-1, 99_999),
        st.sampled_from([*PLAYERS, "x"]),
        st.sampled_from(["1-1", "0-1", "01-1", "1-0", "1800000000000-1", "9" * 20 + "-1"]),
    ),
)

# --------------------------------------------------------------------------- the rig


class Rig:
    """A client of the module's own server, the sentinel, and open holds to aim at."""

    def __init__(self, kind: str, server: RedisServer) -> None:
        self.clock = Clock()
        self.ledger, self._close = make_ledger(kind, server.url, clock=self.clock)
        self.raw = redis.Redis.from_url(server.url)
        self.sentinel_id = f"sentinel-{uuid.uuid4().hex}"  # no strategy can spell it
        self.ledger.initialize_user(self.sentinel_id, 1000)
        self.ledger.reserve(self.sentinel_id, 100, "video_generation", ttl=3600)
        for player in PLAYERS:  # an earlier rig's fuzzing may have set limits that refuse
            for limit in self.ledger.list_limits(player):
                self.ledger.remove_limit(player, limit.name)
        self.lots = [self.ledger.initialize_user(player, 10**6).lot_id for player in PLAYERS]
        for player in PLAYERS:  # an earlier rig's fuzzing may have voided or spent the grant
            self.lots.append(self.ledger.add(player, 10**6, "rig").lot_id)
        self.holds = [
            self.ledger.reserve(p, 5, "video_generation", ttl=3600).id for p in PLAYERS * 4
        ]
        keys = user_keys(self.sentinel_id)
        self._sentinel_keys = [keys.account, keys.log, keys.holds, keys.open, keys.closed]
        self.sentinel = self.sentinel_state()

    def digest(self) -> bytes:
        return bytes(self.raw.execute_command("DEBUG", "DIGEST"))

    def sentinel_state(self) -> list[Any]:
        return [self.raw.dump(key) for key in self._sentinel_keys]

    def check(self, call: Callable[[], Any]) -> None:
        before = self.digest()
        try:
            result = call()
        except CreditsError as error:
            assert str(error)
            assert self.digest() == before, f"{error!r} was raised after a write"
        except BaseException as escaped:
            raise AssertionError(f"not a CreditsError: {escaped!r}") from escaped
        else:
            if isinstance(result, list):
                assert all(
                    not isinstance(item, BaseException) or isinstance(item, CreditsError)
                    for item in result
                ), result
        assert self.sentinel_state() == self.sentinel, "a call changed the sentinel's keys"

    def valid_call_works(self) -> None:
        assert self.ledger.get_account(self.sentinel_id).held == 100
        # A fresh user: fuzzed adds and grants may have filled a player's lot slots, and a
        # refusal there would be the cap working, not the ledger failing.
        fresh = f"check-{uuid.uuid4().hex}"
        assert self.ledger.add(fresh, 1, "purchase").balance == 1
        assert self.ledger.verify_balance(fresh).valid
        assert all(self.ledger.verify_balance(player).valid for player in PLAYERS)

    def close(self) -> None:
        self.raw.close()
        self._close()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("fuzz")) as server:
        yield server


@pytest.fixture(scope="module", params=["sync", "async"])
def rig(request: pytest.FixtureRequest, fuzz_server: RedisServer) -> Iterator[Rig]:
    started = Rig(request.param, fuzz_server)
    yield started
    started.valid_call_works()
    assert started.ledger.verify_balance(started.sentinel_id).valid
    started.close()


# --------------------------------------------------------------------------- every method

# method name -> strategy of (args, kwargs); the rig's real hold ids are added at run time.
Call = tuple[tuple[Any, ...], dict[str, Any]]
CALLS: dict[str, Callable[[list[str]], st.SearchStrategy[Call]]] = {
    "initialize_user": lambda _: st.tuples(
        st.tuples(user_ids, st.one_of(st.none(), amounts), metadata), st.just({})
    ),
    "deduct": lambda _: st.tuples(
        st.tuples(user_ids, amounts, actions, metadata),
        st.fixed_dictionaries({"idempotency_key": keys}),
    ),
    "add": lambda _: st.tuples(
        st.tuples(user_ids, amounts, actions, metadata),
        st.fixed_dictionaries(
            {"idempotency_key": keys},
            optional={
                "expires_at": instants,
                "expires_in": durations,
                "effective_at": instants,
                "priority": numbers,
                "category": categories,
                "scope": scopes,
            },
        ),
    ),
    "add_many": lambda _: st.tuples(st.tuples(bulks), st.just({})),
    "deduct_many": lambda _: st.tuples(st.tuples(bulks), st.just({})),
    "get_balance": lambda _: st.tuples(
        st.tuples(user_ids), st.fixed_dictionaries({}, optional={"action": actions})
    ),
    "list_lots": lambda _: st.tuples(st.tuples(user_ids, lot_statuses), st.just({})),
    "get_lot": lambda real: st.tuples(st.tuples(lot_ids(real)), st.just({})),
    "void_lot": lambda real: st.tuples(
        st.tuples(lot_ids(real), st.one_of(st.none(), any_text, non_str)), st.just({})
    ),
    "expire_lots": lambda _: st.tuples(st.just(()), st.just({})),
    "get_account": lambda _: st.tuples(st.tuples(user_ids), st.just({})),
    "get_transactions": lambda _: st.tuples(
        st.tuples(user_ids),
        st.fixed_dictionaries(
            {},
            optional={
                "limit": limits_,
                "start_time": times,
                "end_time": times,
                "before": tx_ids,
                "after": tx_ids,
            },
        ),
    ),
    "verify_balance": lambda _: st.tuples(
        st.tuples(user_ids),
        st.fixed_dictionaries({}, optional={"full": st.one_of(st.booleans(), non_str)}),
    ),
    "archive_events": lambda _: st.tuples(
        st.just(()),
        st.fixed_dictionaries(
            {},
            optional={
                "hot_days": numbers,
                "batch_events": batch_sizes,
                "users": st.one_of(non_str, st.lists(user_ids, max_size=3)),
            },
        ),
    ),
    "rebuild_balance": lambda _: st.tuples(st.tuples(user_ids), st.just({})),
    "reserve": lambda _: st.tuples(
        st.tuples(user_ids, amounts, actions),
        st.fixed_dictionaries(
            {"ttl": ttls}, optional={"metadata": metadata, "idempotency_key": keys}
        ),
    ),
    "settle": lambda real: st.tuples(
        st.tuples(reservation_ids(real), st.one_of(amounts, st.just(0)), metadata), st.just({})
    ),
    "release": lambda real: st.tuples(
        st.tuples(reservation_ids(real), st.one_of(st.none(), any_text, non_str)), st.just({})
    ),
    "extend": lambda real: st.tuples(st.tuples(reservation_ids(real), ttls), st.just({})),
    "get_reservation": lambda real: st.tuples(st.tuples(reservation_ids(real)), st.just({})),
    "list_reservations": lambda _: st.tuples(
        st.tuples(user_ids, statuses), st.fixed_dictionaries({}, optional={"limit": limits_})
    ),
    "balance_at": lambda _: st.tuples(st.tuples(user_ids, times), st.just({})),
    "expire_reservations": lambda _: st.tuples(
        st.just(()), st.fixed_dictionaries({}, optional={"batch_size": batch_sizes})
    ),
    "reconcile": lambda _: st.tuples(
        st.just(()),
        st.fixed_dictionaries(
            {},
            optional={
                "fix": st.booleans(),
                "batch_size": batch_sizes,
                "progress": progress,
                "full": st.one_of(st.booleans(), non_str),
            },
        ),
    ),
    "check_store": lambda _: st.tuples(st.just(()), st.just({})),
    "read_events": lambda _: st.tuples(
        st.just(()),
        st.fixed_dictionaries({}, optional={"after": cursors, "limit": limits_}),
    ),
    "add_webhook": lambda _: st.tuples(
        st.tuples(webhook_urls),
        st.fixed_dictionaries({}, optional={"events": event_filters, "secret": secrets_}),
    ),
    "remove_webhook": lambda _: st.tuples(st.tuples(endpoint_ids), st.just({})),
    "list_webhooks": lambda _: st.tuples(st.just(()), st.just({})),
    "set_allowance": lambda _: st.tuples(
        st.tuples(user_ids, plan_names, amounts),
        st.fixed_dictionaries(
            {"every": periods},
            optional={
                "anchor": instants,
                "rollover_max": numbers,
                "priority": numbers,
                "scope": scopes,
                "effective": effectives,
            },
        ),
    ),
    "remove_allowance": lambda _: st.tuples(st.tuples(user_ids, plan_names), st.just({})),
    "list_allowances": lambda _: st.tuples(st.tuples(user_ids), st.just({})),
    "set_limit": lambda _: st.tuples(
        st.tuples(user_ids, plan_names, amounts),
        st.fixed_dictionaries({"every": windows}, optional={"scope": scopes}),
    ),
    "remove_limit": lambda _: st.tuples(st.tuples(user_ids, plan_names), st.just({})),
    "list_limits": lambda _: st.tuples(st.tuples(user_ids), st.just({})),
    "set_alert": lambda _: st.tuples(
        st.tuples(user_ids, plan_names), st.fixed_dictionaries({"below": amounts})
    ),
    "remove_alert": lambda _: st.tuples(st.tuples(user_ids, plan_names), st.just({})),
    "list_alerts": lambda _: st.tuples(st.tuples(user_ids), st.just({})),
    "set_auto_topup": lambda _: st.tuples(
        st.tuples(user_ids),
        st.fixed_dictionaries(
            {"below": amounts},
            optional={"amount": amounts, "target": amounts, "max_per_month": numbers},
        ),
    ),
    "remove_auto_topup": lambda _: st.tuples(st.tuples(user_ids), st.just({})),
    "get_auto_topup": lambda _: st.tuples(st.tuples(user_ids), st.just({})),
    "confirm_topup": lambda _: st.tuples(
        st.tuples(topup_ids),
        st.fixed_dictionaries(
            {"paid": st.one_of(st.booleans(), non_str)}, optional={"amount": amounts}
        ),
    ),
    "renew_allowances": lambda _: st.tuples(st.just(()), st.just({})),
}
LOT_ID_METHODS = frozenset({"get_lot", "void_lot"})
# Walking all 1,024 buckets is slower than a single call: fewer examples.
FEWER = {
    "reconcile": 5, "archive_events": 5, "expire_reservations": 20, "expire_lots": 20,
    "read_events": 20, "renew_allowances": 20,
}  # fmt: skip


def public_methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member) and name not in LIFECYCLE
    }


LIFECYCLE = {"close", "aclose", "from_env", "embedded", "redis"}


def test_every_public_method_is_fuzzed() -> None:
    assert public_methods(Credits) == set(CALLS), "add the new method to CALLS"
    assert public_methods(AsyncCredits) == set(CALLS)


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(CALLS))
def test_bad_input_never_escapes_or_writes(rig: Rig, method: str) -> None:
    strategy = CALLS[method](rig.lots if method in LOT_ID_METHODS else rig.holds)
    examples = min(EXAMPLES, FEWER.get(method, EXAMPLES) * (10 if SLOW else 1))

    @settings(FUZZ, max_examples=examples)
    @given(call=strategy)
    def fuzz(call: Call) -> None:
        args, kwargs = call
        rig.check(lambda: getattr(rig.ledger, method)(*args, **kwargs))

    fuzz()
    rig.valid_call_works()


# --------------------------------------------------------------------------- constructors

urls = st.one_of(
    st.sampled_from(["redis://[::1", "redis://h:notaport/0", "ftp://x", "", "https://", "unix://"]),
    st.sampled_from(
        [
            "redis+sentinel://",
            "redis+sentinel://h:1",
            "redis+sentinel://h:x/s",
            "REDIS+SENTINEL://[::1",
        ]
    ),
    st.builds(lambda tail: f"redis+sentinel://{tail}", any_text),
    any_text,
    non_str,
)


@pytest.mark.parametrize("cls", [Credits, AsyncCredits])
@settings(FUZZ, max_examples=min(EXAMPLES, 100))
@given(
    url=urls,
    token=st.one_of(st.none(), any_text, non_str),
    default_credits=numbers,
    clock=st.one_of(st.none(), non_str),
    socket_timeout=numbers,
    wait_replicas=st.one_of(st.none(), numbers),
    wait_timeout_ms=st.one_of(st.none(), numbers),
)
def test_bad_construction_is_a_credits_error(
    cls: type,
    url: Any,
    token: Any,
    default_credits: Any,
    clock: Any,
    socket_timeout: Any,
    wait_replicas: Any,
    wait_timeout_ms: Any,
) -> None:
    try:
        client = cls(
            url,
            token,
            default_credits=default_credits,
            clock=clock,
            socket_timeout=socket_timeout,
            wait_replicas=wait_replicas,
            wait_timeout_ms=wait_timeout_ms,
        )
    except CreditsError:
        return
    except BaseException as escaped:
        raise AssertionError(f"not a CreditsError: {escaped!r}") from escaped
    assert "redis" in repr(client)  # built lazily; nothing to close before a first call


def test_bad_constructor_arguments_fail_at_construction(fuzz_server: RedisServer) -> None:
    """Found by the fuzzer: these passed construction, then failed later or not as CreditsError."""
    for kwargs in (
        {"socket_timeout": "5"},
        {"socket_timeout": -1},
        {"socket_timeout": float("nan")},
    ):
        with pytest.raises(CreditsError):
            Credits(fuzz_server.url, **kwargs)
    for url in ("redis://[::1", "redis://h:notaport/0", 5):
        with pytest.raises(CreditsError):
            Credits(url)
    with pytest.raises(CreditsError):
        Credits(fuzz_server.url, 5)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "now", None, 1e300])
def test_a_clock_that_returns_garbage_is_a_credits_error(
    fuzz_server: RedisServer, bad: Any
) -> None:
    with Credits(fuzz_server.url, clock=lambda: bad) as client, pytest.raises(CreditsError):
        client.deduct("clock-user", 1, "chat_message")


def test_non_iterable_bulk_and_uncallable_progress(fuzz_server: RedisServer) -> None:
    with Credits(fuzz_server.url) as client:
        for items in (None, 5, 1.5):
            with pytest.raises(CreditsError):
                client.deduct_many(items)  # type: ignore[arg-type]
            with pytest.raises(CreditsError):
                client.add_many(items)  # type: ignore[arg-type]
        client.initialize_user("progress-user", 1)
        with pytest.raises(CreditsError):
            client.reconcile(progress=5)  # type: ignore[arg-type]
