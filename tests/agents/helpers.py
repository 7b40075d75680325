"""The classification question the OllamaVLM tests ask, and the answer a well-behaved model gives."""

from __future__ import annotations

from agents.classify import Classification

GOOD = {"category": "removal", "confidence": 0.8, "rationale": "asks to remove"}


def ask(vlm, image=None):
    return vlm.ask(system="SYS", user="USER", images=[image] if image else [], schema=Classification)
