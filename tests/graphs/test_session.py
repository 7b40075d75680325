"""Sessions: turns chain, undo, isolation, persistence, resuming a killed run, two writers.

Each test runs on SQLite and, when `BRUSHEDIT_DATABASE_URL` names a reachable server, on
PostgreSQL (the `database_url` fixture).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from graphs.session import EditSession
from tests.graphs.helpers import make_components, nodes_of, object_mask, picture
from tools.errors import InvalidRequestError

REPO = Path(__file__).resolve().parents[2]


def _mask(x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((64, 64), np.uint8)
    mask[8:56, x0:x1] = 255
    return mask


def test_three_turns_chain_and_undo_restores(tmp_path, database_url):
    components = make_components(tmp_path / "d", planner="rules", database_url=database_url)
    session = EditSession.open(components)
    first = session.edit(picture(), "remove the dark square", mask=object_mask())
    second = session.edit(None, "remove the left strip", mask=_mask(2, 10))
    third = session.edit(None, "remove the right strip", mask=_mask(50, 60))

    assert [r.turn for r in (first, second, third)] == [1, 2, 3]
    assert second.source_image == first.image and third.source_image == second.image
    assert session.current_image == third.image

    assert session.undo() == second.image  # back one turn
    assert [t.undone for t in session.turns()] == [False, False, True]
    fourth = session.edit(None, "remove the bottom", mask=_mask(20, 30))
    assert fourth.source_image == second.image and fourth.turn == 4

    assert session.undo(turn=1) == first.image
    fifth = session.edit(None, "remove the top", mask=_mask(30, 40))
    assert fifth.source_image == first.image
    assert session.undo(turn=0) == first.source_image  # the original picture
    with pytest.raises(InvalidRequestError, match="cannot be restored"):
        session.undo(turn=3)
    assert "undo" in nodes_of(session.trace())


def test_sessions_are_isolated_and_persist(tmp_path, database_url):
    root = tmp_path / "d"
    components = make_components(root, planner="rules", database_url=database_url)
    a, b = EditSession.open(components, "alpha"), EditSession.open(components, "beta")
    ra = a.edit(picture(0), "remove the dark square", mask=object_mask())
    rb = b.edit(picture(1), "remove the left strip", mask=_mask(2, 10))

    assert ra.image != rb.image and a.current_image == ra.image and b.current_image == rb.image
    assert {e["session_id"] for e in a.trace()} == {"alpha"}
    assert all(t.instruction == "remove the left strip" for t in b.turns())
    assert a.values()["instruction"] == "remove the dark square"
    assert b.values()["instruction"] == "remove the left strip"
    components.close()

    reopened = make_components(root, planner="rules", database_url=database_url)
    again = EditSession.open(reopened, "alpha")
    assert again.current_image == ra.image and len(again.turns()) == 1
    follow = again.edit(None, "remove the right strip", mask=_mask(50, 60))
    assert follow.source_image == ra.image and follow.turn == 2
    assert {s["id"] for s in reopened.traces.sessions()} == {"alpha", "beta"}


def test_killed_run_resumes_from_the_last_completed_node(tmp_path, database_url):
    root, marker = tmp_path / "d", tmp_path / "inpainting.started"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.graphs._kill_worker", str(root), "crashy", str(marker),
         *([database_url] if database_url else [])],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"worker exited early: {proc.stdout.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the worker never reached the inpaint node")
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    # a fast OpenCV inpainter this time
    components = make_components(root, planner="rules", database_url=database_url)
    session = EditSession.open(components, "crashy")
    before = nodes_of(session.trace())
    assert before == ["start", "classify", "identify", "mask", "caption"]
    assert session.unfinished() and session.turns()[0].status == "running"

    result = session.resume()
    after = nodes_of(session.trace())
    assert after == [*before, "inpaint", "verify", "finish"]  # nothing before inpaint re-ran
    assert result.accepted and result.turn == 1 and session.turns()[0].status == "done"
    assert not session.unfinished()


def test_user_caption_replaces_the_planners_and_is_traced(tmp_path, database_url):
    components = make_components(tmp_path / "d", planner="rules", database_url=database_url)
    session = EditSession.open(components)
    planned = session.edit(picture(), "remove the dark square", mask=object_mask())
    written = session.edit(
        picture(), "remove the dark square", mask=object_mask(), caption="  plain grey  wall "
    )
    assert written.caption == "plain grey  wall"
    assert planned.caption != written.caption
    caption_rows = [e for e in session.trace() if e["node"] == "caption" and e["turn"] == 2]
    assert caption_rows and caption_rows[-1]["params"]["source"] == "user"
    assert caption_rows[-1]["outputs"]["caption"] == written.caption
    third = session.edit(picture(), "remove the dark square", mask=object_mask())
    assert third.caption == planned.caption, "a caption applies to its own turn only"


def test_processes_opening_fresh_claims_at_once_all_start(tmp_path, database_url):
    """Several processes that first touch a new session database at the same moment each set
    up its claims table (no duplicate-type error from a simultaneous CREATE IF NOT EXISTS),
    and then see each other's claims."""
    from graphs.claims import ConflictError, SessionClaims

    opened = [SessionClaims.postgres(database_url) if database_url else
              SessionClaims.sqlite(tmp_path / "claims.sqlite") for _ in range(4)]
    start, errors, held = threading.Barrier(len(opened)), [], []

    def first_use(claims: SessionClaims, index: int) -> None:
        try:
            start.wait(timeout=30)
            held.append(claims.claim(f"s{index}"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(c, i)) for i, c in enumerate(opened)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert not errors, errors
        assert all(opened[0].busy(f"s{i}") for i in range(len(opened)))
        with pytest.raises(ConflictError):
            opened[0].claim("s1")
    finally:
        for claim in held:
            claim.release()
        for claims in opened:
            claims.close()


def test_two_writers_on_one_database_keep_every_turn(tmp_path, database_url):
    """Two processes' worth of components (own connections, opened at once) edit side by side."""
    root = tmp_path / "d"
    start = threading.Barrier(2)
    results: dict[str, list] = {}
    errors: list[BaseException] = []

    def writer(name: str, x0: int) -> None:
        try:
            start.wait(timeout=30)
            components = make_components(root, planner="rules", database_url=database_url)
            session = EditSession.open(components, name)
            first = session.edit(picture(x0), "remove the dark square", mask=object_mask())
            second = session.edit(None, "remove the left strip", mask=_mask(x0 + 2, x0 + 10))
            results[name] = [first, second]
            components.close()
        except BaseException as exc:  # reported below, with the thread's name
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(name, x0)) for name, x0 in
               (("left", 0), ("right", 30))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert set(results) == {"left", "right"}

    reopened = make_components(root, planner="rules", database_url=database_url)
    for name, (first, second) in results.items():
        session = EditSession.open(reopened, name)
        assert [t.turn for t in session.turns()] == [1, 2]
        assert second.source_image == first.image and session.current_image == second.image
        values = session.values()
        assert values["instruction"] == "remove the left strip"
    assert results["left"][0].image != results["right"][0].image


def test_a_second_turn_on_a_busy_session_is_refused_and_nothing_is_lost(tmp_path):
    """Two turns at once on one session would share its thread and abandon each other's turn;
    the facade refuses the second (`ConflictError`) and the first finishes untouched."""
    from graphs.claims import ConflictError
    from tests.graphs.helpers import SleepyInpainter

    started = tmp_path / "started"
    components = make_components(
        tmp_path / "d", planner="rules",
        inpainters={"opencv": SleepyInpainter(started, seconds=1.0)},
    )
    outcome: dict[str, object] = {}

    def first() -> None:
        session = EditSession.open(components, "busy")
        outcome["first"] = session.edit(picture(), "remove the dark square", mask=object_mask())

    thread = threading.Thread(target=first)
    thread.start()
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    second = EditSession.open(components, "busy")
    with pytest.raises(ConflictError, match="already running in session 'busy'"):
        second.edit(picture(), "remove the dark square", mask=object_mask())
    with pytest.raises(ConflictError):
        second.resume()
    other = EditSession.open(components, "other")  # other sessions are not held up
    assert other.edit(picture(), "remove the dark square", mask=object_mask()).image
    thread.join(timeout=60)
    session = EditSession.open(components, "busy")
    assert [(t.turn, t.status) for t in session.turns()] == [(1, "done")]
    assert session.current_image == outcome["first"].image
    # once the turn is over, the session takes the next one
    assert session.edit(None, "remove the left strip", mask=_mask(2, 10)).source_image == \
        outcome["first"].image
