"""Scripts leave out the shared functions they never call, and only those."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from credits import scripts
from credits.lua_prune import names_used, prune

LUA_DIR = Path(scripts.__file__).parent / "lua"
DEFINED = re.compile(r"^local function ([A-Za-z_][A-Za-z0-9_]*)\(", re.MULTILINE)

SAMPLE = """\
local function used(x)
  return x + 1
end

local function only_named_in_text(x)
  return x
end

local function called_by_unused(x)
  return x
end

local function unused(x)
  return called_by_unused(x)
end

local function calls_itself(n)
  if n > 0 then
    return calls_itself(n - 1)
  end
  return 0
end

local t = { only_named_in_text = 1 }
local s = 'only_named_in_text(' .. [[calls_itself()]] -- unused(1)
--[[ called_by_unused(2) ]]
return used(t.only_named_in_text)
"""


def defined(source: str) -> set[str]:
    return set(DEFINED.findall(source))


def test_functions_named_only_in_strings_comments_or_fields_are_left_out() -> None:
    pruned = prune(SAMPLE)
    # a table key is an identifier: kept (a false "used" only keeps a function)
    assert defined(pruned) == {"used", "only_named_in_text"}
    assert pruned.endswith("return used(t.only_named_in_text)\n")


def test_identifiers_outside_strings_and_comments() -> None:
    assert names_used("f(x) -- g(y)\nlocal s = 'h(z)' .. a.b .. c:d()") == {
        "f", "x", "local", "s", "a", "c",
    }  # fmt: skip


def test_code_at_column_0_inside_a_function_is_refused() -> None:
    with pytest.raises(ValueError, match="column 0"):
        prune("local function f()\nreturn 1\nend\n")


def test_a_function_without_its_end_at_column_0_is_refused() -> None:
    with pytest.raises(ValueError, match="no 'end'"):
        prune("local function f()\n  return 1\n  end\n")


@pytest.mark.parametrize("name", sorted(p.stem for p in LUA_DIR.glob("*.lua")))
def test_every_script_keeps_every_function_it_calls(name: str) -> None:
    body = (LUA_DIR / f"{name}.lua").read_text("utf-8")
    parts = [
        (LUA_DIR / "include" / f"{p}.lua").read_text("utf-8") for p in scripts._parts_in_order(body)
    ]
    whole = "\n".join([*parts, body])
    kept = scripts.script(name).source
    missing = (names_used(kept) & defined(whole)) - defined(kept)
    assert missing == set(), f"{name} calls {missing} but they were left out"


def test_a_read_leaves_out_the_log_writer() -> None:
    read = scripts.script("read_account").source
    write = scripts.script("deduct").source
    assert "local function append(" in write
    assert "local function append(" not in read
    assert len(defined(read)) < len(defined(write))
