"""`GET /planner`: which vision model plans this server's edits (server kind, address, family).

No `from __future__ import annotations`: FastAPI reads the route signatures at runtime.
"""

from typing import Any

from fastapi import FastAPI

from graphs.vlm_setup import PlannerInfo, planner_info
from interfaces.api.docs import ErrorDocs
from interfaces.api.jobs import ApiState


def add_planner_routes(app: FastAPI, state: ApiState, auth: list[Any], errors: ErrorDocs) -> None:
    """Register `/planner` on `app`."""

    @app.get("/planner", response_model=PlannerInfo, dependencies=auth, tags=["meta"],
             responses=errors("/planner", "get"))
    def get_planner() -> PlannerInfo:
        """The planner mode and the VLM that plans edits: its server (Ollama or an
        OpenAI-compatible one) and address, model and family, found from its name without
        asking the server (`brushedit doctor` asks it)."""
        return planner_info(state.components_now())
