"""Stopping a turn through the session facade: a `CancelToken` set from another thread stops the
work within one diffusion step (or at the next node), files the turn `cancelled` and keeps no
result; Ctrl-C does the same. The surfaces' own cancel paths are tested with each surface."""

from __future__ import annotations

import threading

import pytest

from graphs.cancel import CancelToken
from graphs.session import EditSession
from tests.graphs.helpers import (
    SteppingInpainter,
    make_components,
    object_mask,
    picture,
    wait_until,
)
from tools.errors import EditCancelledError


def _session(tmp_path, inpainter):
    components = make_components(tmp_path / "d", planner="rules", max_attempts=1,
                                 inpainter="brushnet", inpainters={"brushnet": inpainter})
    return components, EditSession.open(components)


def _artifacts(components) -> set[str]:
    return {p.name for p in components.store.root.rglob("*.png")}


def _edit_in_thread(session, token, events):
    outcome: dict = {}

    def work():
        try:
            outcome["result"] = session.edit(picture(), "remove the dark square",
                                             mask=object_mask(), cancel=token,
                                             on_event=events.append)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    return thread, outcome


def test_a_cancel_mid_diffusion_stops_within_one_step_and_keeps_nothing(tmp_path):
    inpainter = SteppingInpainter(total=2000, step_s=0.005)
    components, session = _session(tmp_path, inpainter)
    token, events = CancelToken(), []
    thread, outcome = _edit_in_thread(session, token, events)
    wait_until(lambda: inpainter.steps_run >= 5)
    before = _artifacts(components)
    at_cancel = inpainter.steps_run
    token.cancel()
    thread.join(30)

    assert not thread.is_alive()
    assert inpainter.steps_run - at_cancel <= 1  # the step in flight, nothing after it
    error = outcome["error"]
    assert isinstance(error, EditCancelledError) and error.total == 2000
    assert error.step is not None and error.step <= at_cancel + 1
    turn = session.turns()[-1]
    assert turn.status == "cancelled" and turn.image is None and not turn.accepted
    assert session.current_image is None or session.current_image == turn.source
    assert _artifacts(components) == before  # no candidate, no result
    rows = {(e["node"], e["status"]) for e in session.trace()}
    assert ("inpaint", "cancelled") in rows and ("cancel", "cancelled") in rows
    assert not any(e["node"] in ("verify", "finish") for e in session.trace())
    assert next(e for e in events if e["type"] == "cancelled")["step"] == error.step
    assert not [e for e in events if e["type"] == "result"]
    # The session goes on: the next turn runs to the end.
    inpainter.total = 3
    assert session.edit(picture(), "remove the dark square", mask=object_mask()).turn == 2


def test_a_token_set_before_the_run_stops_it_between_nodes(tmp_path):
    inpainter = SteppingInpainter(total=5)
    _components, session = _session(tmp_path, inpainter)
    token = CancelToken()
    token.cancel("stopped by the test")
    with pytest.raises(EditCancelledError, match="stopped by the test"):
        session.edit(picture(), "remove the dark square", mask=object_mask(), cancel=token)
    assert inpainter.steps_run == 0
    assert session.turns()[-1].status == "cancelled"
    assert [e["node"] for e in session.trace()] == ["cancel"]


def test_ctrl_c_mid_step_files_the_turn_cancelled_and_claims_no_success(tmp_path):
    inpainter = SteppingInpainter(total=50, interrupt_at=3)
    _components, session = _session(tmp_path, inpainter)
    with pytest.raises(KeyboardInterrupt):
        session.edit(picture(), "remove the dark square", mask=object_mask())
    assert inpainter.steps_run == 3
    assert session.turns()[-1].status == "cancelled"
    statuses = {e["node"]: e["status"] for e in session.trace()}
    assert statuses["inpaint"] == "cancelled" and "finish" not in statuses
    assert session.unfinished()  # `brushedit resume` can still finish it
    inpainter.interrupt_at = None
    assert session.resume().accepted is not None
    assert session.turns()[-1].status == "done"
