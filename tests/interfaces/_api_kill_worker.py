"""Serve the HTTP API on loopback over `ROOT`, so a test can SIGKILL it mid-edit and restart it.

    python -m tests.interfaces._api_kill_worker ROOT PORT [MARKER [SECONDS]]

With MARKER, the inpaint node touches it and then sleeps for SECONDS (default 120: the moment
to kill); without, the OpenCV inpainter runs at once. Heartbeats every 0.2 s, so a killed server's edit
reads as interrupted after 0.6 s. With `BRUSHEDIT_DATABASE_URL` a postgresql:// URL, the sessions
and jobs live in that database instead of ROOT's SQLite file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn

from interfaces.api import create_app
from tests.graphs.helpers import SleepyInpainter, make_components


def main() -> None:
    root, port = Path(sys.argv[1]), int(sys.argv[2])
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 120.0
    inpainters = {"opencv": SleepyInpainter(Path(sys.argv[3]), seconds=seconds)} if len(
        sys.argv) > 3 else None
    components = make_components(root, planner="rules", inpainters=inpainters)
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
