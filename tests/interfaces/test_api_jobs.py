"""Edit jobs outlive the server: killed mid-edit, restarted, the edit is found and resumed."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interfaces.api.job_store import JobStore
from tests.graphs.conftest import POSTGRES_URL  # read before the tests clear it
from tests.graphs.helpers import nodes_of, object_mask, picture
from tests.interfaces.conftest import LOOPBACK

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

REPO = Path(__file__).resolve().parents[2]


def _png(image) -> bytes:
    from PIL import Image

    if not hasattr(image, "save"):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _send_edit(post, base: str = "", **params: str):
    """Open a session and send it the test edit (the dark square, with its mask): (id, reply)."""
    sid = post(f"{base}/sessions").json()["id"]
    reply = post(
        f"{base}/sessions/{sid}/edits", params=params,
        data={"instruction": "remove the dark square"},
        files={"image": ("in.png", _png(picture()), "image/png"),
               "mask": ("m.png", _png(object_mask()), "image/png")},
    )
    return sid, reply


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(root: Path, port: int, *slow: Path | float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "tests.interfaces._api_kill_worker", str(root), str(port)]
    proc = subprocess.Popen([*args, *map(str, slow)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited early: {proc.stdout.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("the server never answered /healthz")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def test_killed_server_leaves_a_resumable_edit(tmp_path):
    root, marker, port = tmp_path / "d", tmp_path / "inpainting.started", _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(root, port, marker)
    try:
        sid, started = _send_edit(httpx.post, base, wait="false")
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline, "the edit never reached the inpaint node"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _stop(proc)
    assert proc.returncode == -signal.SIGKILL

    # A fresh server on the same session database; its inpainter takes 1.5 s, so the resumed
    # edit can be watched live.
    proc = _start(root, port, tmp_path / "resumed.started", 1.5)
    try:
        with httpx.Client(base_url=base, timeout=60) as http:
            time.sleep(0.7)  # three missed heartbeats
            found = http.get(location)
            assert found.status_code == 200, found.text
            edit = found.json()
            assert edit["status"] == "interrupted" and edit["turn"] == 1
            assert edit["links"]["resume"] == location + "/resume"
            assert [e["edit_id"] for e in http.get(f"/sessions/{sid}/edits").json()["edits"]] \
                == [edit["edit_id"]]
            assert http.get(f"/sessions/{sid}").json()["turns"][0]["status"] == "running"

            replay = http.get(edit["links"]["events"]).text
            assert "event: started" in replay and "event: interrupted" in replay
            assert "event: done" not in replay

            before = [int(line[4:]) for line in replay.splitlines() if line.startswith("id: ")]
            resumed = http.post(edit["links"]["resume"], params={"wait": "false"})
            assert resumed.status_code == 202 and resumed.json()["status"] == "running"
            # A reader from the start while it runs: the stored events, then the live ones.
            full = http.get(location + "/events").text
            every = [int(line[4:]) for line in full.splitlines() if line.startswith("id: ")]
            assert every[: len(before)] == before and every == list(range(1, len(every) + 1))
            assert "event: done" in full and "event: interrupted" not in full
            body = http.get(location).json()
            assert body["status"] == "done" and body["result"]["accepted"]
            assert body["edit_id"] == edit["edit_id"] and body["links"]["resume"] is None
            session = http.get(f"/sessions/{sid}").json()
            assert [t["status"] for t in session["turns"]] == ["done"]
            nodes = nodes_of(http.get(f"/sessions/{sid}/trace").json()["events"])
            assert nodes.count("mask") == 1 and nodes[-3:] == ["inpaint", "verify", "finish"]

            again = http.post(edit["links"]["resume"])
            assert again.status_code == 409 and "interrupted" in again.json()["error"]["message"]
            # Events numbered across both servers: after the last pre-crash one, only new ones.
            events = http.get(edit["links"]["events"], headers={"Last-Event-ID": "2"}).text
            ids = [int(line[4:]) for line in events.splitlines() if line.startswith("id: ")]
            assert ids and ids[0] == 3 and ids == sorted(ids) and "event: done" in events
    finally:
        _stop(proc)


def test_job_retention_is_bounded(tmp_path):
    store = JobStore.sqlite(tmp_path / "s.sqlite", max_jobs=3, ttl_s=3600)
    for n in range(5):
        store.create(f"job{n}", "s1", "me")
        store.add_event(f"job{n}", 1, {"type": "started"})
    kept = [r.edit_id for r in store.list("s1")]
    assert kept == ["job2", "job3", "job4"]
    assert store.events("job0") == [] and store.events("job4") == [(1, {"type": "started"})]
    store.finish("job2", "done", result={"x": 1})
    store.ttl_s = -1  # everything finished is past its time now
    assert store.prune() == 1 and [r.edit_id for r in store.list("s1")] == ["job3", "job4"]
    store.close()


def test_jobs_live_in_the_checkpointers_database(tmp_path):
    from tests.graphs.helpers import make_components

    components = make_components(tmp_path / "d", planner="rules")
    store = JobStore.for_components(components, stale_s=0.05)
    store.create("a", "s", "me")
    time.sleep(0.1)
    assert store.get("a").status == "interrupted"
    assert store.claim("a", "other") and store.get("a").status == "running"
    assert not store.claim("a", "third")  # fresh heartbeat: not stale any more
    import sqlite3

    db = sqlite3.connect(tmp_path / "d" / "sessions.sqlite")
    assert db.execute("SELECT owner FROM brushedit_jobs").fetchall() == [("other",)]
    store.close()
    components.close()


@pytest.mark.skipif(
    not POSTGRES_URL.startswith("postgres"),
    reason="set BRUSHEDIT_DATABASE_URL=postgresql://... to run against PostgreSQL",
)
def test_jobs_in_postgres(tmp_path):
    store = JobStore.open(POSTGRES_URL, tmp_path / "unused.sqlite",
                          max_jobs=2, stale_s=0.05)
    session = f"pg{time.time_ns()}"
    for n in range(3):
        store.create(f"{session}-{n}", session, "me")
        store.add_event(f"{session}-{n}", 1, {"type": "started", "n": n})
    assert [r.edit_id for r in store.list(session)] == [f"{session}-1", f"{session}-2"]
    time.sleep(0.1)
    assert store.get(f"{session}-2").status == "interrupted"
    assert store.claim(f"{session}-2", "other")
    assert store.events(f"{session}-2") == [(1, {"type": "started", "n": 2})]
    store.delete_session(session)
    assert store.list(session) == []
    store.close()


@pytest.mark.skipif(
    not POSTGRES_URL.startswith("postgres"),
    reason="set BRUSHEDIT_DATABASE_URL=postgresql://... to run against PostgreSQL",
)
def test_api_jobs_share_the_postgres_session_database(tmp_path):
    from fastapi.testclient import TestClient

    from graphs import Settings, build_components
    from interfaces.api import create_app

    settings = Settings(data_dir=tmp_path / "data", _env_file=None,
                        database_url=POSTGRES_URL)
    components = build_components(settings, inpainter="opencv", planner="rules",
                                  segmenter=False)
    with TestClient(create_app(lambda: components), base_url=LOOPBACK) as client:
        sid, created = _send_edit(client.post)
        assert created.status_code == 201, created.text
        edit_id = created.json()["edit_id"]
        with components.checkpointer.conn.cursor() as cursor:
            cursor.execute("SELECT status FROM brushedit_jobs WHERE edit_id = %s", (edit_id,))
            assert [tuple(r.values()) for r in cursor.fetchall()] == [("done",)]
        assert client.get(created.headers["location"]).json()["status"] == "done"
        assert client.delete(f"/sessions/{sid}").status_code == 204
        assert client.get(created.headers["location"]).status_code == 404
    components.close()


def test_a_clean_shutdown_interrupts_running_edits_at_once(tmp_path):
    import threading

    import uvicorn

    from interfaces.api import create_app
    from tests.graphs.helpers import SleepyInpainter, make_components

    marker = tmp_path / "started"
    components = make_components(tmp_path / "d", planner="rules",
                                 inpainters={"opencv": SleepyInpainter(marker, seconds=2)})
    port = _free_port()
    app = create_app(lambda: components, heartbeat_s=60)  # staleness would take minutes
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    _, started = _send_edit(httpx.post, base, wait="false")
    edit_id = started.json()["edit_id"]
    while not marker.exists():
        time.sleep(0.05)
    server.should_exit = True
    thread.join(timeout=20)
    store = JobStore.for_components(components, stale_s=60)
    assert store.get(edit_id).status == "interrupted"
    store.close()
    time.sleep(2.2)  # let the sleeping inpainter finish before the components close
    components.close()


def _kill_at(tmp_path, monkeypatch, where: str) -> tuple[Path, int, str, str]:
    """Send the test edit to a server that stalls at `where` (`write`: half-way through the
    edit's first image write; `turn`: before its turn is filed), SIGKILL it there, and start a
    fresh one on the same data: (data folder, port, session id, the edit's URL)."""
    root, marker, port = tmp_path / "d", tmp_path / "stalled", _free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("BRUSHEDIT_TEST_STALL", f"{where}:{marker}")
    proc = _start(root, port)
    try:
        sid, started = _send_edit(httpx.post, base, wait="false")
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline, f"the edit never reached {where}"
            time.sleep(0.05)
        if where == "write":
            assert list((root / "artifacts").glob("*/tmp*.tmp"))  # the half-written file
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _stop(proc)
    monkeypatch.delenv("BRUSHEDIT_TEST_STALL")
    return root, port, sid, started.headers["location"]


@pytest.mark.parametrize("where", ["write", "turn"])
def test_killed_at_any_moment_an_interrupted_edit_resumes(tmp_path, monkeypatch, where):
    """Issue 24, kind 6: SIGKILL during the edit's first image write, or before its turn is
    filed. Before: `interrupted` with a resume link, then always 409 ("its turn was replaced
    or finished"), and a `tmp*.tmp` file that was never cleaned up."""
    root, port, sid, location = _kill_at(tmp_path, monkeypatch, where)
    proc = _start(root, port)
    try:
        assert not list((root / "artifacts").glob("*/tmp*.tmp"))  # cleaned up on start
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            time.sleep(0.7)  # three missed heartbeats
            edit = http.get(location).json()
            assert edit["status"] == "interrupted" and edit["links"]["resume"], edit
            resumed = http.post(edit["links"]["resume"])
            assert resumed.status_code == 200, resumed.text
            assert resumed.json()["status"] == "done" and resumed.json()["result"]["accepted"]
            assert resumed.json()["turn"] == 1
            turns = http.get(f"/sessions/{sid}").json()["turns"]
            assert [t["status"] for t in turns] == ["done"]
            again = http.post(edit["links"]["resume"])  # done now: nothing left to resume
            assert again.status_code == 409
    finally:
        _stop(proc)
