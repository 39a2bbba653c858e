"""The README's quickstart runs as written, with no Redis configured."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from credits import Credits
from credits.redis_server import stop_embedded

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), flags=re.S)


def test_quickstart_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The quickstart, then its reserve block in the same session, as a reader runs them."""
    monkeypatch.chdir(tmp_path)
    for name in ("CREDITS_REDIS_URL", "UPSTASH_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    quickstart, reserve = _python_blocks()[:2]
    namespace: dict[str, object] = {}
    try:
        exec(compile(quickstart, "README quickstart", "exec"), namespace)
        assert capsys.readouterr().out.split() == ["90", "1000", "90"]
        exec(compile(reserve, "README reserve block", "exec"), namespace)
        assert capsys.readouterr().out.split() == ["275", "25", "2400", "0", "2415"]
        client = namespace["credits"]
        assert isinstance(client, Credits)
        client.close()
    finally:
        stop_embedded(tmp_path / ".credits")


def test_embedded_server_is_reused_and_persists(tmp_path: Path) -> None:
    data = tmp_path / "data"
    try:
        with Credits.embedded(data) as first:
            first.add("persisted-user", 7, "grant")
        with Credits.embedded(data) as second:
            assert second.get_balance("persisted-user") == 7
        assert list(data.rglob("*.aof")), "the embedded server keeps an append-only file"
    finally:
        stop_embedded(data)
