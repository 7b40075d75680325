"""Issue 24's hostile round, the cases that need more than one process or a full disk.

Kind 5: two `brushedit serve`-like processes on one data folder, and the CLI beside them, each
sending an edit of the same session: exactly one runs, the others get 409 / exit 2, and the
session keeps exactly the turn that was answered "done". Kind 10: a disk that fills during an
edit is 503 `StorageFullError` in API words, one log line, nothing half-written.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from pathlib import Path

import pytest

from interfaces.cli_errors import REFUSED_EXIT
from tests.graphs.helpers import object_mask, picture
from tests.interfaces.test_api_jobs import _free_port, _png, _start, _stop

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

INSTRUCTION = "remove the dark square"


def _post_edit(base: str, sid: str) -> httpx.Response:
    return httpx.post(f"{base}/sessions/{sid}/edits", data={"instruction": INSTRUCTION},
                      files={"image": ("in.png", _png(picture()), "image/png"),
                             "mask": ("m.png", _png(object_mask()), "image/png")}, timeout=60)


def test_kind5_two_servers_on_one_folder_run_one_edit_of_a_session(tmp_path):
    """Before: both processes accepted edits of the same session in 7 of 20 rounds; in 3 both
    answered 201 "turn 1" and the session kept one turn. Now the claim lives in the session
    database, which both processes (and the CLI) read."""
    root = tmp_path / "d"
    ports = [_free_port(), _free_port()]
    procs = [_start(root, port, tmp_path / f"inpainting{i}", 2.5)
             for i, port in enumerate(ports)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for round_ in range(2):
            sid = httpx.post(f"{bases[round_ % 2]}/sessions", timeout=30).json()["id"]
            replies: dict[int, httpx.Response] = {}

            def send(i: int, sid: str = sid, replies: dict = replies) -> None:
                replies[i] = _post_edit(bases[i], sid)

            threads = [threading.Thread(target=send, args=(i,)) for i in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=90)
            codes = sorted(reply.status_code for reply in replies.values())
            assert codes == [201, 409], [r.text for r in replies.values()]
            refused = next(r for r in replies.values() if r.status_code == 409)
            assert refused.json()["error"]["type"] == "ConflictError"
            for base in bases:  # both processes see the one turn
                turns = httpx.get(f"{base}/sessions/{sid}", timeout=30).json()["turns"]
                assert [(t["turn"], t["status"]) for t in turns] == [(1, "done")], turns
        _the_cli_is_refused_while_a_server_edits(root, bases[0], tmp_path / "inpainting0")
    finally:
        for proc in procs:
            _stop(proc)


def _the_cli_is_refused_while_a_server_edits(root: Path, base: str, marker: Path) -> None:
    """Before: a CLI edit of a session was accepted while the API edited it."""
    from typer.testing import CliRunner

    from interfaces.cli import app

    sid = httpx.post(f"{base}/sessions", timeout=30).json()["id"]
    marker.unlink(missing_ok=True)
    running = threading.Thread(target=_post_edit, args=(base, sid))
    running.start()
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    (root.parent / "in.png").write_bytes(_png(picture()))
    (root.parent / "m.png").write_bytes(_png(object_mask()))
    res = CliRunner().invoke(app, [
        "edit", str(root.parent / "in.png"), INSTRUCTION, "-o", str(root.parent / "o.png"),
        "--mask", str(root.parent / "m.png"), "--session", sid, "--inpainter", "opencv",
        "--planner", "rules"], env={"BRUSHEDIT_DATA_DIR": str(root)})
    assert running.is_alive()  # the CLI was refused while the server's edit ran
    running.join(timeout=60)
    assert res.exit_code == REFUSED_EXIT, res.output  # the session is busy: refused
    assert "already running in session" in " ".join(res.output.split()), res.output
    assert not (root.parent / "o.png").exists()
    turns = httpx.get(f"{base}/sessions/{sid}", timeout=30).json()["turns"]
    assert [(t["turn"], t["status"]) for t in turns] == [(1, "done")], turns


# -- kind 10: a full disk --------------------------------------------------------------------


def _full_disk_writer(write):
    """`graphs.artifacts._write_atomic` on a disk that fills part-way through the file."""

    def full(path, fill, **kwargs):
        def part(handle):
            handle.write(b"\x89PNG\r\n\x1a\n part of it")
            raise OSError(errno.ENOSPC, "No space left on device")

        return write(path, part, **kwargs)

    return full


def test_kind10_a_full_disk_is_503_in_api_words_one_log_line_nothing_half_written(
        tmp_path, monkeypatch, caplog):
    """Before: 500 `OSError [Errno 28]`, then `InternalError`, 29 tracebacks in the log and
    about 40 KB kept per failed edit."""
    import graphs.artifacts as artifacts
    from interfaces.api import create_app
    from tests.graphs.helpers import make_components
    from tests.interfaces.test_api_server import Server

    components = make_components(tmp_path / "d", planner="rules")
    with Server(create_app(lambda: components)) as http:
        sid = http.post("/sessions").json()["id"]
        before = {p for p in (tmp_path / "d" / "artifacts").rglob("*") if p.is_file()}
        monkeypatch.setattr(artifacts, "_write_atomic",
                            _full_disk_writer(artifacts._write_atomic))
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            reply = http.post(f"/sessions/{sid}/edits", data={"instruction": INSTRUCTION},
                              files={"image": ("in.png", _png(picture()), "image/png"),
                                     "mask": ("m.png", _png(object_mask()), "image/png")})
        assert reply.status_code == 503, reply.text
        error = reply.json()["error"]
        assert error["type"] == "StorageFullError"
        assert "no space is left on the disk" in error["message"]
        assert "Errno" not in error["message"] and str(tmp_path) not in error["message"]
        after = {p for p in (tmp_path / "d" / "artifacts").rglob("*") if p.is_file()}
        assert after == before  # no temporary or half-written image kept
        records = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(records) == 1 and records[0].exc_info is None, [
            r.getMessage() for r in records]
        monkeypatch.undo()
        done = http.post(f"/sessions/{sid}/edits", data={"instruction": INSTRUCTION},
                         files={"image": ("in.png", _png(picture()), "image/png"),
                                "mask": ("m.png", _png(object_mask()), "image/png")})
        assert done.status_code == 201, done.text  # space again: the session goes on
    components.close()
