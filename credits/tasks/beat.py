"""Beat's scheduler: Celery's own, keeping its schedule file in the data dir.

``celery beat`` writes ``celerybeat-schedule*`` into the current directory by
default, which litters a checkout. The configuration points the file into
``CREDITS_DATA_DIR``; this scheduler makes that directory when it does not
exist yet (Celery's would fail to open the file). With
``-S redbeat.RedBeatScheduler`` there is no file at all.
"""

from __future__ import annotations

from pathlib import Path

from celery.beat import PersistentScheduler


class DataDirScheduler(PersistentScheduler):
    """:class:`celery.beat.PersistentScheduler` that creates its file's directory."""

    def setup_schedule(self) -> None:
        filename: str = self.schedule_filename  # type: ignore[attr-defined]
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        super().setup_schedule()
