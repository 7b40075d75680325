"""Session routes: list, create, show, delete, undo, trace.

No `from __future__ import annotations`: FastAPI reads the route signatures at runtime.
"""

from typing import Any

from fastapi import FastAPI, Query, Response

from interfaces.api.docs import ErrorDocs
from interfaces.api.jobs import ApiState
from interfaces.api.models import (
    INT64_MAX,
    PAGE_LIMIT,
    SessionOut,
    SessionPage,
    SessionSummary,
    TraceOut,
    UndoIn,
)
from interfaces.api.params import SessionId
from interfaces.common import ConflictError, jsonable, new_session, turn_out
from tools.errors import InvalidRequestError


def add_session_routes(app: FastAPI, state: ApiState, auth: list[Any], errors: ErrorDocs) -> None:
    """Register the session routes on `app`."""

    @app.get("/sessions", response_model=SessionPage, dependencies=auth, tags=["sessions"],
             responses=errors("/sessions", "get", 422))
    def list_sessions(
        limit: int = Query(20, ge=1, le=PAGE_LIMIT, description="Sessions per page."),
        offset: int = Query(0, ge=0, le=INT64_MAX, description="Sessions to skip."),
    ) -> SessionPage:
        """Sessions, most recently updated first, a page at a time (follow `next`)."""
        traces = state.components_now().traces
        total = traces.count_sessions()
        rows = traces.sessions(limit=limit, offset=offset) if offset < total else []
        more = offset + len(rows) < total
        return SessionPage(
            sessions=[SessionSummary(id=r["id"], created=r["created"], updated=r["updated"],
                                     title=r["title"], turns=r["turns"]) for r in rows],
            total=total, limit=limit, offset=offset,
            next=f"/sessions?limit={limit}&offset={offset + len(rows)}" if more else None,
        )

    @app.post("/sessions", response_model=SessionOut, status_code=201, dependencies=auth,
              tags=["sessions"], responses=errors("/sessions", "post", 503))
    def create_session(response: Response) -> SessionOut:
        """Start an empty session; its edits chain, each kept result feeding the next."""
        session = new_session(state.open_session, state.components_now())
        response.headers["Location"] = f"/sessions/{session.id}"
        return state.session_out(session)

    @app.get("/sessions/{session_id}", response_model=SessionOut, dependencies=auth,
             tags=["sessions"], responses=errors("/sessions/{session_id}", "get", 404))
    def get_session(session_id: SessionId) -> SessionOut:
        """The session's turns (undone ones are flagged, not deleted)."""
        return state.session_out(state.existing_session(session_id))

    @app.delete("/sessions/{session_id}", status_code=204, dependencies=auth,
                tags=["sessions"],
                responses=errors("/sessions/{session_id}", "delete", 404, 409))
    def delete_session(session_id: SessionId) -> Response:
        """Forget a session for good: turns, trace, checkpoints and edits (their text
        overwritten in the database files) and the images no other session uses."""
        session = state.existing_session(session_id)
        if not hasattr(session, "delete"):
            raise InvalidRequestError("this server's sessions cannot be deleted")
        lease = state.claim_session(session_id, slot=False)
        try:
            state.jobs().delete_session(session_id)
            session.delete(lease=lease)
        finally:
            state.release_session(session_id)
        return Response(status_code=204)

    @app.post("/sessions/{session_id}/undo", response_model=SessionOut, dependencies=auth,
              tags=["sessions"], openapi_extra={"x-body": "json"},
              responses=errors("/sessions/{session_id}/undo", "post", 400, 404, 409, 413, 415,
                               422))
    def undo_turn(session_id: SessionId, body: UndoIn | None = None) -> SessionOut:
        """Go back one turn, or to `turn`; the next edit continues from there."""
        session = state.existing_session(session_id)
        if state.busy(session_id):
            raise ConflictError(f"an edit is running in session {session_id!r}; undo after it")
        if not [t for t in session.turns() if not turn_out(t).undone]:
            raise InvalidRequestError(f"session {session_id!r} has no turn to undo")
        session.undo(turn=body.turn if body else None)
        return state.session_out(session)

    @app.get("/sessions/{session_id}/trace", response_model=TraceOut, dependencies=auth,
             tags=["sessions"], responses=errors("/sessions/{session_id}/trace", "get", 404))
    def get_trace(session_id: SessionId) -> TraceOut:
        """Every agent step: node, inputs, outputs, model prompts and answers, image hashes."""
        session = state.existing_session(session_id)
        return TraceOut(session_id=session_id, events=jsonable(session.trace()))
