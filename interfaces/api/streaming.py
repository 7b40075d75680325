"""How an edit answers: at once (202), when done (201/200), or as server-sent events.

Events are numbered per job, so a reader that reconnects with `Last-Event-ID` gets only what
it missed: live ones from the running job, earlier ones replayed from the job store.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from interfaces.api.handlers import error_response
from interfaces.api.jobs import ApiState, EditJob

POLL_AFTER_S = 1
"""`Retry-After` of a 202: when a client polling `links.status` should look again."""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


async def answer(state: ApiState, job: EditJob, *, stream: bool, wait: bool, created: bool,
                 after: int = 0) -> Any:
    location = f"/sessions/{job.session_id}/edits/{job.edit_id}"
    if stream:
        return EventSourceResponse(
            sse_stream(state, job.edit_id, after), ping=15,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                     "Location": location},
        )
    if not wait:
        record = await asyncio.to_thread(state.jobs().get, job.edit_id)
        return JSONResponse(state.edit_out(record).model_dump(mode="json"), status_code=202,
                            headers={"Location": location, "Retry-After": str(POLL_AFTER_S)})
    while not job.done.is_set():  # no thread held while waiting
        await job.wait(job.seq, timeout=5.0)
    if job.status in ("failed", "cancelled"):
        assert job.error is not None
        return error_response(job.http_status, job.error)
    record = await asyncio.to_thread(state.jobs().get, job.edit_id)
    return JSONResponse(state.edit_out(record).model_dump(mode="json"),
                        status_code=201 if created else 200,
                        headers={"Location": location})


async def sse_stream(state: ApiState, edit_id: str, after: int) -> AsyncIterator[Any]:
    """Events after `after`, live or replayed from the store, until the job ends."""
    store = state.jobs()
    while True:
        job = state.live.get(edit_id)
        if job is not None and after < job.base_seq:  # resumed: earlier events are stored
            items = [item for item in await asyncio.to_thread(store.events, edit_id, after)
                     if item[0] <= job.base_seq]
            items = items or [(job.base_seq, {})]
        elif job is not None:
            items = job.after(after)
        else:
            items = await asyncio.to_thread(store.events, edit_id, after)
        for seq, event in items:
            if not event:  # nothing stored before a resumption: skip to the live events
                after = seq
                continue
            yield ServerSentEvent(data=_json(event), event=str(event.get("type", "message")),
                                  id=str(seq))
            after = seq
        if job is not None:
            if job.done.is_set() and not job.after(after):
                return
            await job.wait(after, timeout=5.0)
            continue
        if items:
            continue
        record = await asyncio.to_thread(store.get, edit_id)
        if record is None or record.status in ("done", "failed", "cancelled"):
            return
        if record.status == "interrupted":
            out = state.edit_out(record)
            yield ServerSentEvent(
                data=_json({"type": "interrupted", "edit_id": edit_id,
                            "resume": out.links.resume}),
                event="interrupted")
            return
        await asyncio.sleep(0.5)  # running on another server process: poll the store

