"""What ``pip install credits`` puts into site-packages, read from a freshly built wheel."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser

import pytest
from worker_rig import REPO_ROOT

pytestmark = pytest.mark.system  # builds a wheel (about ten seconds)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built from a copy of the sources (the checkout gets no build/ directory)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(
        REPO_ROOT / "credits", source / "credits", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (built,) = out.glob("credits-*.whl")
    return zipfile.ZipFile(built)


def test_no_top_level_celeryconfig_is_installed(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    top_level = {name.split("/", 1)[0] for name in names if not name.endswith(".dist-info/")}
    assert "celeryconfig.py" not in top_level
    assert {n for n in top_level if not n.endswith(".dist-info")} == {"credits"}
    assert "credits/tasks/celeryconfig.py" in names


def test_the_scripts_and_their_parts_ship(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for path in (REPO_ROOT / "credits" / "lua").rglob("*.lua"):
        assert path.relative_to(REPO_ROOT).as_posix() in names


def test_the_ledger_alone_needs_only_redis_and_pydantic(wheel: zipfile.ZipFile) -> None:
    (metadata_name,) = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(wheel.read(metadata_name).decode())
    requires = metadata.get_all("Requires-Dist") or []
    core = sorted(
        re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0] for r in requires if "extra ==" not in r
    )
    assert core == ["pydantic", "pydantic-settings", "redis"]
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert {"worker", "flower", "cli", "embedded", "http", "all", "dev"} <= extras


def test_the_admin_page_templates_ship(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for path in (REPO_ROOT / "credits" / "http" / "templates").glob("*.html"):
        assert path.relative_to(REPO_ROOT).as_posix() in names
