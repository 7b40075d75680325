"""A decompression-bomb mask through the HTTP API (real uvicorn) and MCP: a 4xx sentence, not 500."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.interfaces.conftest import make_image, png

pytest.importorskip("fastapi")
pytest.importorskip("httpx")


def _bomb() -> bytes:
    """A 30000x30000 one-bit PNG: about 100 kB on the wire, 900 million pixels opened."""
    buf = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_bomb_mask_is_refused_and_the_server_stays_up(offline_factory):
    from interfaces.api import create_app
    from tests.interfaces.test_api_server import Server

    image = png(make_image(64, 48))
    with Server(create_app(offline_factory)) as http:
        sid = http.post("/sessions").json()["id"]
        answer = http.post(f"/sessions/{sid}/edits", data={"instruction": "remove it"},
                           files={"image": ("a.png", image, "image/png"),
                                  "mask": ("m.png", _bomb(), "image/png")})
        assert answer.status_code == 413, answer.text  # over the pixel limit, as documented
        error = answer.json()["error"]
        assert error["type"] == "ImageTooLargeError"  # an InvalidImageError with its facts
        assert error["message"] == ("the uploaded mask has 900,000,000 pixels, over the limit "
                                    "of 40,000,000 pixels")
        # The same connection still works (a 500 from inside the app used to reset it).
        assert http.get(f"/sessions/{sid}").status_code == 200


def test_a_bomb_mask_is_an_mcp_sentence(offline_factory):
    from interfaces.mcp_server import create_mcp_server
    from tests.interfaces.test_mcp import b64, error_text, mcp, run

    server = create_mcp_server(offline_factory)

    async def main():
        async with mcp.Client(server) as client:
            return await client.call_tool("edit_image", {
                "instruction": "remove it", "image": b64(png(make_image(64, 48))),
                "mask": b64(_bomb())})

    result = run(main)
    assert result.is_error and "900,000,000 pixels, over the limit" in error_text(result)
    assert "internal error" not in error_text(result)
