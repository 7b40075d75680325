"""Run one edit whose inpaint node sleeps, so a test can SIGKILL this process mid-graph.

    python -m tests.graphs._kill_worker ROOT SESSION_ID MARKER [DATABASE_URL]
"""

from __future__ import annotations

import sys
from pathlib import Path

from graphs.session import EditSession
from tests.graphs.helpers import SleepyInpainter, make_components, object_mask, picture


def main() -> None:
    root, session_id, marker = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    database_url = sys.argv[4] if len(sys.argv) > 4 else None
    components = make_components(
        root, planner="rules", inpainters={"opencv": SleepyInpainter(marker, seconds=120)},
        database_url=database_url,
    )
    EditSession.open(components, session_id).edit(
        picture(), "remove the dark square", mask=object_mask()
    )


if __name__ == "__main__":
    main()
