"""Hostile input through the real `langgraph dev` server and the official SDK client.

Bad fields come back as the run's error in one sentence, and a garbage resume command leaves the
thread resumable (the in-process cases are in test_audit_inputs.py).
"""

from __future__ import annotations

from tests.graphs import test_langgraph_server as base
from tests.graphs.test_langgraph_server import pytestmark, server  # noqa: F401 - a fixture


def test_bad_fields_and_a_garbage_resume_over_the_sdk(server):  # noqa: F811
    from langgraph_sdk import get_client

    url, tmp = server
    photo = str(base._photo(tmp))

    async def go():
        client = get_client(url=url)
        assistant = await base._assistant(client)
        errors = []
        for bad in ({"image": 5}, {"options": {"seed": 2**40}}, {"instruction": ["x"]}):
            thread = (await client.threads.create())["thread_id"]
            out = await client.runs.wait(thread, assistant, input={
                "image": photo, "instruction": "remove the dark square", "mask": base._mask_uri(),
                "options": {"inpainter": "opencv"}, **bad}, raise_error=False)
            errors.append(out["__error__"])
        thread = (await client.threads.create())["thread_id"]
        await client.runs.wait(thread, assistant, input={
            "image": photo, "instruction": "remove the dark square", "mask": base._mask_uri(),
            "review_mask": True, "options": {"inpainter": "opencv"}})
        await client.runs.wait(thread, assistant, command={"resume": "garbage"})
        state = await client.threads.get_state(thread)
        done = await client.runs.wait(thread, assistant, command={"resume": {"approve": True}})
        return errors, state, done

    errors, state, done = base._run(go())
    assert [e["error"] for e in errors] == ["InvalidRequestError"] * 3, errors
    messages = [e["message"] for e in errors]
    assert "`image` must be a path" in messages[0]
    assert "`options.seed`" in messages[1] and "pydantic" not in messages[1]
    assert "`instruction` must be text" in messages[2]
    interrupts = [i for task in state["tasks"] for i in task["interrupts"]]
    assert interrupts and "must be {'approve': true}" in interrupts[0]["value"]["error"]
    assert done["result"]["accepted"]
