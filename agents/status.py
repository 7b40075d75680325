"""What a model server probe found, for a doctor command to print with a fix."""

from __future__ import annotations

from pydantic import BaseModel, Field

from agents.errors import ServerKind
from agents.families import FamilyMatch


class VLMStatus(BaseModel):
    """The server (`server`, `host`: its URL), whether it answers, has the model, and whether the
    model can see; the model's family when the server said enough to find it."""

    server: ServerKind
    host: str
    model: str
    reachable: bool = False
    version: str | None = None
    model_present: bool = False
    vision: bool | None = Field(default=None, description="None when the server does not say.")
    vision_probed: bool = Field(
        default=False, description="`vision` comes from showing the model a tiny picture, not "
        "from the server's listing.")
    capabilities: list[str] = Field(default_factory=list)
    available_models: list[str] = Field(default_factory=list)
    family: FamilyMatch | None = Field(
        default=None, description="The model's family (`agents.families`), once it is present."
    )
    error: str | None = None
    fix: str | None = None

    @property
    def url(self) -> str:
        return self.host

    @property
    def ok(self) -> bool:
        return self.reachable and self.model_present and self.vision is not False
