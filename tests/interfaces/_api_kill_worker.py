"""Serve the HTTP API on loopback over `ROOT`, so a test can SIGKILL it mid-edit and restart it.

    python -m tests.interfaces._api_kill_worker ROOT PORT [MARKER]

With MARKER, the inpaint node touches it and then sleeps for two minutes (the moment to kill);
without, the OpenCV inpainter runs at once. Heartbeats every 0.2 s, so a killed server's edit
reads as interrupted after 0.6 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from graphs.interfaces.api import create_app
from tests.graphs.helpers import SleepyInpainter, make_components


def main() -> None:
    root, port = Path(sys.argv[1]), int(sys.argv[2])
    inpainters = {"opencv": SleepyInpainter(Path(sys.argv[3]), seconds=120)} if len(
        sys.argv) > 3 else None
    components = make_components(root, planner="rules", inpainters=inpainters)
    app = create_app(lambda: components, heartbeat_s=0.2)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
