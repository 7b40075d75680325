"""Artifact routes: images and masks by content hash (`GET`/`HEAD /artifacts/{digest}`).

No `from __future__ import annotations`: FastAPI reads the route signatures at runtime.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse

from interfaces.api.docs import ErrorDocs
from interfaces.api.jobs import ApiState
from interfaces.api.params import Digest
from interfaces.common import artifact_path


def add_artifact_routes(app: FastAPI, state: ApiState, auth: list[Any], errors: ErrorDocs) -> None:
    """Register the artifact routes on `app`."""

    @app.get(
        "/artifacts/{digest}",
        dependencies=auth,
        tags=["artifacts"],
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {"schema": {"type": "string",
                                                               "format": "binary"}}},
                          "description": "The PNG"},
                   **errors("/artifacts/{digest}", "get", 404, 422)},
    )
    def get_artifact(digest: Digest) -> FileResponse:
        """An image or mask by its sha256 content hash (never by path)."""
        path = artifact_path(state.components_now(), digest)
        return FileResponse(
            path, media_type="image/png",
            headers={"Cache-Control": "public, max-age=31536000, immutable"},
        )

    app.head("/artifacts/{digest}", dependencies=auth, include_in_schema=False)(get_artifact)
