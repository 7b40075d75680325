"""Serve the HTTP API on loopback over `ROOT`, so a test can SIGKILL it mid-edit and restart it.

    python -m tests.interfaces._api_kill_worker ROOT PORT [MARKER [SECONDS]]

With MARKER, the inpaint node touches it and then sleeps for SECONDS (default 120: the moment
to kill); without, the OpenCV inpainter runs at once. With `BRUSHEDIT_TEST_STALL` set to
`write:FILE`, the edit's first image write instead stops half-way, touches FILE and sleeps;
with `turn:FILE`, the edit stops just before its turn is filed. Heartbeats every 0.2 s, so a killed server's edit
reads as interrupted after 0.6 s. With `BRUSHEDIT_DATABASE_URL` a postgresql:// URL, the sessions
and jobs live in that database instead of ROOT's SQLite file.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import uvicorn

from graphs.artifacts import ArtifactStore
from interfaces.api import create_app
from tests.graphs.helpers import SleepyInpainter, make_components


class SlowFirstWrite(ArtifactStore):
    """A store whose first write inside an edit stops half-way: the moment to kill."""

    def __init__(self, root: Path, marker: Path) -> None:
        super().__init__(root)
        self.marker = marker

    def _put(self, image):
        # `prepare` stores the uploads in the event loop's executor; the edit, elsewhere
        in_edit = not threading.current_thread().name.startswith(("asyncio", "uvloop"))
        if in_edit and not self.marker.exists():
            from graphs.artifacts import _write_atomic
            from tools.images import content_hash

            def half(handle) -> None:
                handle.write(b"\x89PNG\r\n\x1a\n half of it")
                handle.flush()
                self.marker.write_text("writing")
                time.sleep(120)

            _write_atomic(self.path(content_hash(image)), half)
        return super()._put(image)


def main() -> None:
    root, port = Path(sys.argv[1]), int(sys.argv[2])
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 120.0
    inpainters = {"opencv": SleepyInpainter(Path(sys.argv[3]), seconds=seconds)} if len(
        sys.argv) > 3 else None
    components = make_components(root, planner="rules", inpainters=inpainters)
    where, _, stall = os.environ.get("BRUSHEDIT_TEST_STALL", "").partition(":")
    if where == "write":
        components.store = SlowFirstWrite(root / "artifacts", Path(stall))
    elif where == "turn":
        file_turn = components.traces.start_turn

        def stalled(*args, **kwargs):
            Path(stall).write_text("filing the turn")
            time.sleep(120)
            return file_turn(*args, **kwargs)

        components.traces.start_turn = stalled
    url = os.environ.get("BRUSHEDIT_DATABASE_URL") or ""
    if url.startswith("postgres"):
        from graphs import Settings
        from graphs.components import open_checkpointer

        components.checkpointer = open_checkpointer(
            Settings(data_dir=root, database_url=url, _env_file=None))
    app = create_app(lambda: components, heartbeat_s=0.2)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
