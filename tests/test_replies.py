"""The Lua→Python reply protocol: every status word a script can answer is mapped.

A status word is the first element of a table a script returns
(``return { 'insufficient', ... }``) or of a table it hands back from a
shared part (``return { 'conflict' }`` in ``include/idempotency.lua``). A word
that no Python code maps would reach a caller as "unexpected reply".
"""

from __future__ import annotations

import re
from importlib import resources

import pytest

from credits import replies
from credits.errors import (
    BalanceVerificationError,
    CreditsError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    LimitExceededError,
    ReservationClosedError,
    ReservationNotFoundError,
    StoreRefusedError,
)
from credits.scripts import _parts_in_order, includes, script

# `{ 'word'` at the start of a returned table: every reply is built this way.
STATUS_WORD = re.compile(r"\{\s*'([a-z_]+)'")


def _lua_files() -> dict[str, str]:
    root = resources.files("credits").joinpath("lua")
    files = {
        f"lua/{p.name}": p.read_text("utf-8") for p in root.iterdir() if p.name.endswith(".lua")
    }
    include = root.joinpath("include")
    files |= {
        f"lua/include/{p.name}": p.read_text("utf-8")
        for p in include.iterdir()
        if p.name.endswith(".lua")
    }
    return files


def _status_words(source: str) -> set[str]:
    words: set[str] = set()
    for line in source.splitlines():
        code = line.split("--", 1)[0]
        if "return" in code or code.strip().startswith("{"):
            words |= set(STATUS_WORD.findall(code))
    return words


def test_every_status_word_of_every_script_is_mapped() -> None:
    found = {path: _status_words(source) for path, source in _lua_files().items()}
    assert any(found.values()), "no status words found: the pattern no longer matches the scripts"
    unmapped = {path: words - replies.STATUSES for path, words in found.items()}
    assert not {path: words for path, words in unmapped.items() if words}


def test_every_mapped_word_is_answered_by_some_script() -> None:
    """No dead entries: a word no script can answer is a mapping nobody tests."""
    answered = set().union(*(_status_words(s) for s in _lua_files().values()))
    assert replies.STATUSES - answered == set()


def test_every_script_names_the_parts_it_uses_and_they_exist() -> None:
    for path, source in _lua_files().items():
        if path.startswith("lua/include/") or path.endswith("prelude.lua"):
            continue
        name = path.removeprefix("lua/").removesuffix(".lua")
        assert includes(source), f"{path} includes nothing"
        assert _parts_in_order(source)  # every named part can be read
        assert script(name).source.count("local function fmt(") == 1  # each part once


CONTEXT = replies.Context("deduct", "user-1", amount=7, idempotency_key="k")


@pytest.mark.parametrize(
    ("reply", "error", "fields"),
    [
        (["insufficient", 3], InsufficientCreditsError, {"required": 7, "available": 3}),
        (["conflict"], IdempotencyConflictError, {"idempotency_key": "k"}),
        (["overflow", 10], LimitExceededError, {"limit": "balance_total", "used": 10}),
        (["too_many_holds", 1000], LimitExceededError, {"limit": "open_holds", "used": 1000}),
        (["not_found"], ReservationNotFoundError, {"reservation_id": "user-1"}),
        (["closed", "released"], ReservationClosedError, {"status": "released"}),
        (["impossible", -1, 0], BalanceVerificationError, {}),
        (["too_many_endpoints", 100], LimitExceededError, {"limit": "webhook_endpoints"}),
    ],
)
def test_refusals_become_typed_errors_with_their_data(
    reply: list[object], error: type[CreditsError], fields: dict[str, object]
) -> None:
    with pytest.raises(error) as raised:
        replies.check(reply, CONTEXT)
    for name, value in fields.items():
        assert getattr(raised.value, name) == value
    assert raised.value.outcome_known


@pytest.mark.parametrize("reply", [["what"], [], None, "ok", [3, 4]])
def test_an_unknown_reply_is_a_store_refusal_not_a_crash(reply: object) -> None:
    with pytest.raises(StoreRefusedError, match="unexpected reply from the deduct script"):
        replies.check(reply, CONTEXT)  # type: ignore[arg-type]
