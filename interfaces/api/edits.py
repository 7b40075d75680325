"""Edit routes: start an edit, list and show edits, resume an interrupted one, its events.

An edit runs as a job (`ApiState.start_job`); the request answers when it is done, at once
(`wait=false`) or as server-sent events (`stream=true`). Everything a client sends is checked
before the session or a turn is touched.

No `from __future__ import annotations`: FastAPI reads the route signatures at runtime and must
see the real `Request`/`UploadFile` classes.
"""

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, Response, UploadFile
from sse_starlette import EventSourceResponse

from graphs.cancel import CancelToken
from interfaces.api.docs import ErrorDocs
from interfaces.api.jobs import ApiState, EditJob, abandon_interrupted
from interfaces.api.models import INT64_MAX, EditList, EditOut
from interfaces.api.options import (
    check_form_fields,
    check_option_ranges,
    option_form_dependency,
)
from interfaces.api.params import EditId, SessionId
from interfaces.api.streaming import answer, sse_stream
from interfaces.common import (
    ConflictError,
    NotFoundError,
    check_session_id,
    default_options,
    parse_options,
    prepare_edit,
    run_prepared,
    session_exists,
)
from tools.errors import InvalidRequestError

EDIT_PATH = "/sessions/{session_id}/edits"
EVENT_SCHEMA = {"type": "string", "description": "Server-sent events (`event:`, `id:` and "
                "`data:` lines); each `data` is one `EditEvent` as JSON."}
"""A `text/event-stream` body: text to a generated client, its events typed by `itemSchema`
(`interfaces.api.docs.finish_openapi` adds `EditEvent`, from `interfaces.api.events`)."""
EVENT_CONTENT = {"schema": EVENT_SCHEMA, "itemSchema": {"$ref": "#/components/schemas/EditEvent"}}


def add_edit_routes(app: FastAPI, state: ApiState, auth: list[Any], errors: ErrorDocs
                    ) -> None:
    """Register on `app`: POST an edit, list a session's edits, show one."""
    options_form = option_form_dependency()
    edit_path = EDIT_PATH

    @app.post(
        edit_path,
        response_model=EditOut,
        status_code=201,
        dependencies=auth,
        tags=["edits"],
        openapi_extra={"x-body": "form"},
        responses={
            200: {
                "content": {"text/event-stream": EVENT_CONTENT},
                "description": "With `stream=true`: the edit's server-sent events (each `data` "
                "is an `EditEvent`).",
            },
            201: {"model": EditOut, "description": "The finished edit (`Location`: its URL)."},
            202: {"model": EditOut, "description": "Started, with `wait=false` (`Location`)."},
            **errors(edit_path, "post", 400, 404, 409, 413, 415, 422, 503),
        },
    )
    async def create_edit(
        request: Request,
        session_id: SessionId,
        instruction: str = Form(..., description="What to change, e.g. 'remove the cat'."),
        image: UploadFile | None = File(None, description="Image to edit; none = last result."),
        mask: UploadFile | None = File(
            None, description="Optional mask of the image's size, white = edit."
        ),
        options: str | None = Form(None, description="EditOptions as a JSON object."),
        caption: str | None = Form(
            None, description="Target caption for the inpainter, instead of the planner's."
        ),
        fields: dict[str, Any] = Depends(options_form),
        stream: bool = Query(False, description="Answer with server-sent events."),
        wait: bool = Query(True, description="false: answer 202 at once; follow the links."),
    ):
        """Run one edit. Default: answer 201 when it is done, with `Location`; `wait=false`:
        answer 202 at once and follow `links.events`; `stream=true`: answer with server-sent
        events (`turn`, `node`, `progress`, ..., then `done` with the result, or `error`)."""
        check_form_fields(await request.form())
        comps = await asyncio.to_thread(state.components_now)
        check_session_id(session_id)
        if not await asyncio.to_thread(session_exists, comps, session_id):
            raise NotFoundError(f"no session {session_id!r}; create one with POST /sessions")
        opts = check_option_ranges(
            parse_options(options, fields, defaults=default_options(comps, state.settings))
        )
        image_bytes = await image.read() if image is not None and image.filename else None
        mask_bytes = await mask.read() if mask is not None and mask.filename else None
        prepared = await asyncio.to_thread(
            lambda: prepare_edit(
                comps, state.open_session, instruction=instruction, image=image_bytes,
                mask=mask_bytes, options=opts.model_dump(), session_id=session_id,
                max_pixels=state.max_pixels, caption=caption,
            )
        )
        store = await asyncio.to_thread(state.jobs)
        lease = await asyncio.to_thread(state.claim_session, session_id)
        try:
            await asyncio.to_thread(abandon_interrupted, store, session_id)
            job = EditJob(edit_id=uuid.uuid4().hex, session_id=session_id, store=store)
            await asyncio.to_thread(store.create, job.edit_id, session_id, state.owner,
                                    prepared.turn.model_dump(mode="json"))
        except BaseException:
            state.release_session(session_id)
            raise
        state.start_job(job, lambda emit: run_prepared(comps, state.open_session, prepared, emit,
                                                       cancel=job.cancel, lease=lease))
        return await answer(state, job, stream=stream, wait=wait, created=True)

    @app.get(edit_path, response_model=EditList, dependencies=auth, tags=["edits"],
             responses=errors(edit_path, "get", 404))
    def list_edits(session_id: SessionId) -> EditList:
        """The session's retained edits, oldest first (finished ones expire after a while)."""
        state.existing_session(session_id)
        return EditList(edits=[state.edit_out(r) for r in state.jobs().list(session_id)])

    @app.get(edit_path + "/{edit_id}", response_model=EditOut, dependencies=auth,
             tags=["edits"], responses=errors(edit_path + "/{edit_id}", "get", 404))
    def get_edit(session_id: SessionId, edit_id: EditId) -> EditOut:
        """An edit's status and, once done, its result; `interrupted` ones can be resumed."""
        return state.edit_out(state.get_record(session_id, edit_id))


def resumption(session: Any, record: Any, edit_id: str, lease: Any, cancel: CancelToken
               ) -> tuple[int | None, Any]:
    """How an interrupted edit finishes, whatever moment the server died at: (its turn number,
    when known, and `work(emit)`, which `cancel` stops).

    Its turn paused or cut short: continue it from its last completed step. The server died
    before the turn was filed: run the edit's stored request now. It died after the turn
    finished but before the edit was marked done: the turn's result is the edit's. A turn that
    a later edit replaced, or that failed, cannot be resumed (`ConflictError`).
    """
    from graphs.session import PreparedTurn

    turns = session.turns()
    turn = record.turn
    if turn is None and turns and turns[-1].status in ("running", "review"):
        turn = turns[-1].turn  # filed, but the server died before the edit noted its number
    if turn is None:
        if not record.request:
            raise ConflictError(f"edit {edit_id} cannot be resumed: its turn was replaced or "
                                "finished; start a new edit")
        prepared = PreparedTurn.model_validate(record.request)
        return None, lambda emit: session.run(prepared, on_event=emit, cancel=cancel,
                                                    lease=lease)
    mine = next((t for t in turns if t.turn == turn), None)
    if mine is None or turns[-1].turn != turn:
        raise ConflictError(f"edit {edit_id} cannot be resumed: its turn was replaced; start a "
                            "new edit")
    if mine.status in ("running", "review") and session.unfinished():
        return turn, lambda emit: session.resume(on_event=emit, cancel=cancel, lease=lease)
    finished = session.values().get("result") if mine.status == "done" else None
    if finished and finished.get("turn") == turn:
        from tools.types import EditResult

        return turn, lambda emit: EditResult.model_validate(finished)
    raise ConflictError(f"edit {edit_id} cannot be resumed: its turn is {mine.status}; start "
                        "a new edit")


def add_resume_routes(app: FastAPI, state: ApiState, auth: list[Any], errors: ErrorDocs
                      ) -> None:
    """Register on `app`: resume an interrupted edit, follow an edit's server-sent events."""
    edit_path = EDIT_PATH

    @app.post(
        edit_path + "/{edit_id}/resume",
        response_model=EditOut,
        dependencies=auth,
        tags=["edits"],
        responses={
            200: {"model": EditOut, "description": "The resumed edit, finished."},
            202: {"model": EditOut, "description": "Resumed, with `wait=false`."},
            **errors(edit_path + "/{edit_id}/resume", "post", 404, 409, 422, 503),
        },
    )
    async def resume_edit(
        session_id: SessionId,
        edit_id: EditId,
        stream: bool = Query(False, description="Answer with the edit's next server-sent events."),
        wait: bool = Query(True, description="false: answer 202 at once; follow the links."),
    ):
        """Continue an edit that a stopped server left `interrupted`, from its last completed
        step (nothing done before is redone)."""
        record = await asyncio.to_thread(state.get_record, session_id, edit_id)
        status = state.edit_out(record).status
        if status != "interrupted" or edit_id in state.live:
            raise ConflictError(
                f"edit {edit_id} is {status}; only an interrupted edit can be resumed"
            )
        comps = await asyncio.to_thread(state.components_now)
        session = await asyncio.to_thread(state.open_session, comps, session_id)
        if not hasattr(session, "resume"):
            raise InvalidRequestError("this server's sessions cannot resume edits")
        lease = await asyncio.to_thread(state.claim_session, session_id)
        try:
            store = state.jobs()
            cancel = CancelToken()
            turn, work = await asyncio.to_thread(resumption, session, record, edit_id, lease,
                                                 cancel)
            if not await asyncio.to_thread(store.claim, edit_id, state.owner):
                raise ConflictError(f"edit {edit_id} is being resumed already")
            if turn is not None and turn != record.turn:
                await asyncio.to_thread(store.set_turn, edit_id, turn)
            job = EditJob(edit_id=edit_id, session_id=session_id, store=store,
                          seq=await asyncio.to_thread(store.last_seq, edit_id), turn=turn,
                          cancel=cancel)
        except BaseException:
            state.release_session(session_id)
            raise
        after = job.seq
        state.start_job(job, work)
        return await answer(state, job, stream=stream, wait=wait, created=False, after=after)

    @app.get(
        edit_path + "/{edit_id}/events",
        dependencies=auth,
        tags=["edits"],
        response_class=EventSourceResponse,
        responses={
            200: {"content": {"text/event-stream": EVENT_CONTENT},
                  "description": "The edit's events, each with an `id` (each `data` is an "
                  "`EditEvent`)."},
            **errors(edit_path + "/{edit_id}/events", "get", 404, 422),
        },
    )
    def get_edit_events(
        session_id: SessionId,
        edit_id: EditId,
        last_event_id: Annotated[
            int | None,
            Header(ge=0, le=INT64_MAX,
                   description="Resume after this event id (browsers send it on reconnect)."),
        ] = None,
    ) -> EventSourceResponse:
        """Server-sent events of an edit, replayed from the start (or after `Last-Event-ID`),
        until `done`, `error` or `interrupted`."""
        record = state.get_record(session_id, edit_id)
        return EventSourceResponse(
            sse_stream(state, record.edit_id, last_event_id or 0), ping=15,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def add_cancel_routes(app: FastAPI, state: ApiState, auth: list[Any], errors: ErrorDocs
                      ) -> None:
    """Register on `app`: cancel a running edit, and delete an edit (cancelling it first)."""
    path = EDIT_PATH + "/{edit_id}"

    @app.post(
        path + "/cancel",
        response_model=EditOut,
        dependencies=auth,
        tags=["edits"],
        responses={
            200: {"model": EditOut, "description": "The edit, stopped (`status: cancelled`)."},
            **errors(path + "/cancel", "post", 404, 409),
        },
    )
    async def cancel_edit(session_id: SessionId, edit_id: EditId) -> EditOut:
        """Stop a running edit within one diffusion step (or at its next step) and answer once
        it has stopped. Its turn is filed `cancelled` and nothing it made is kept; 409 for an
        edit that is already finished."""
        return state.edit_out(await state.cancel_edit(session_id, edit_id))

    @app.delete(path, status_code=204, dependencies=auth, tags=["edits"],
                responses=errors(path, "delete", 404, 409))
    async def delete_edit(session_id: SessionId, edit_id: EditId) -> Response:
        """Forget an edit (its record and events), cancelling it first if it runs; the
        session's turn stays, filed `cancelled` or as it ended."""
        await state.cancel_edit(session_id, edit_id, finished=True)
        await asyncio.to_thread(state.jobs().delete, edit_id)
        return Response(status_code=204)
