"""Running the ``credits`` command as a subprocess, the way a user runs it."""

from __future__ import annotations

import subprocess
import sys
from typing import Final

from worker_rig import REPO_ROOT

CLI_TIMEOUT_S: Final = 180
# Rich wraps at the terminal width; a wide one keeps lines whole where a test reads them.
WIDE: Final = {"COLUMNS": "200"}
NARROW: Final = {"COLUMNS": "80"}


def credits_cli(
    *args: str, env: dict[str, str], timeout_s: float = CLI_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from credits.cli import main; main()", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        stdin=subprocess.DEVNULL,
    )
