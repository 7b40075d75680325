"""Path parameters shared by the routes, described once for the OpenAPI document."""

from typing import Annotated

from fastapi import Path as PathParam

SessionId = Annotated[str, PathParam(description="Session id, from POST /sessions.")]
EditId = Annotated[str, PathParam(description="Edit id, from POST .../edits.")]
Digest = Annotated[str, PathParam(description="sha256 content hash (64 lowercase hex).")]
