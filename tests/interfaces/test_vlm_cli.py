"""Which VLM plans, on every surface: `--vlm-url` on the CLI, the doctor's rows for both server
kinds, `GET /planner` and the MCP `brushedit://planner` resource."""

from __future__ import annotations

import json

import anyio
import pytest
from typer.testing import CliRunner

from interfaces.cli import app
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.interfaces.conftest import LOOPBACK

MODEL = "Qwen/Qwen3-VL-8B-Instruct"


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def table_rows(output: str) -> dict[str, str]:
    """The doctor's table as {check: the rest of its line(s)}."""
    rows: dict[str, str] = {}
    name = None
    for line in output.splitlines():
        if "│" not in line:
            continue
        cells = [c.strip() for c in line.split("│")[1:-1]]
        name = cells[0] or name
        rows[name] = f"{rows.get(name, '')} {' '.join(cells[1:])}"
    return {name: " ".join(text.split()) for name, text in rows.items()}  # wrapped lines joined


def test_edit_with_vlm_url_plans_on_that_server(files, tmp_path):
    image, mask = files
    with FakeOpenAI(models=[MODEL], family="qwen3-vl") as server:
        result = run("edit", str(image), "remove the dark square", "-o", str(tmp_path / "o.png"),
                     "--mask", str(mask), "--inpainter", "opencv", "--planner", "vlm",
                     "--vlm-url", server.url, "--vlm-model", MODEL)
        asked = server.chat_requests
    assert result.exit_code == 0, result.output
    assert f"planner vlm: {MODEL} (Qwen3-VL)" in " ".join(result.output.split())
    assert asked and {r["model"] for r in asked} == {MODEL}
    assert (tmp_path / "o.png").is_file()


def test_an_addition_a_model_cannot_place_is_one_line_naming_the_mask_flag(files, tmp_path):
    image, _ = files
    with FakeOpenAI(models=["gemma3:4b"], family="gemma3") as server:
        result = run("edit", str(image), "add a hat", "-o", str(tmp_path / "o.png"),
                     "--inpainter", "opencv", "--vlm-url", server.url, "--vlm-model", "gemma3:4b")
    assert result.exit_code == 3, result.output  # refused: the input needs a mask
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: gemma3:4b (Gemma 3) cannot point at places in a picture")
    assert "pass a mask with `--mask MASK.png` where it should go" in line
    assert "“add a hat on the man”" in line and not (tmp_path / "o.png").exists()


def test_a_bad_vlm_url_is_a_usage_error_naming_the_option(files, tmp_path):
    image, _ = files
    result = run("edit", str(image), "remove the dark square", "-o", str(tmp_path / "o.png"),
                 "--vlm-url", "ftp://box")
    assert result.exit_code == 2 and "--vlm-url" in result.output
    assert "is not a server address" in " ".join(result.output.split())


def test_doctor_reports_an_openai_compatible_server_its_model_and_family(monkeypatch):
    with FakeOpenAI(models=[MODEL], family="qwen3-vl", vision=True) as server:
        monkeypatch.setenv("BRUSHEDIT_VLM_URL", server.url)
        monkeypatch.setenv("BRUSHEDIT_VLM_MODEL", MODEL)
        rows = table_rows(run("doctor").output)
        wrong = run("doctor", "--vlm-model", "qwen2.5-vl-7b")
    assert rows["OpenAI-compatible server"] == f"ok answers at {server.base_url}"
    assert rows[f"VLM model {MODEL}"] == "ok served; capabilities: vision"
    family = rows["VLM family"]
    assert family.startswith(f"ok Qwen3-VL, by model name '{MODEL}'; sees images")
    assert "0-1000 grid, grounding strong" in family
    assert "Ollama" not in " ".join(rows)
    said = " ".join(wrong.output.split())
    assert "the server does not serve 'qwen2.5-vl-7b'" in said
    assert f"set BRUSHEDIT_VLM_MODEL (or --vlm-model) to one of: {MODEL}" in said


@pytest.mark.parametrize("sees", [True, False])
def test_doctor_shows_a_vllm_style_server_a_picture_to_say_whether_it_sees(sees):
    with FakeOpenAI(models=[MODEL], family="qwen3-vl", vision=sees,
                    lists_vision=False) as server:
        result = run("doctor", "--vlm-url", server.base_url, "--vlm-model", MODEL)
    family = " ".join(table_rows(result.output)["VLM family"].split())
    if sees:
        assert family.startswith(f"ok Qwen3-VL, by model name '{MODEL}'; sees images (it "
                                 "took a test picture)")
    else:
        assert family.startswith("missing Qwen3-VL") and "refused a test picture" in family
        assert "cannot see images" in family


def test_doctor_reports_the_ollama_model_family_and_a_blind_family(monkeypatch):
    with FakeOllama.as_family("gemma3") as server:
        monkeypatch.setenv("BRUSHEDIT_OLLAMA_HOST", server.url)
        monkeypatch.setenv("BRUSHEDIT_OLLAMA_MODEL", "gemma3:4b")
        rows = table_rows(run("doctor").output)
    assert rows["Ollama server"] == f"ok answers at {server.url} (Ollama 0.12.6)"
    assert rows["Ollama model gemma3:4b"] == "ok pulled; capabilities: completion, vision"
    assert rows["VLM family"].startswith("ok Gemma 3, by details.family 'gemma3'; sees images;"
                                         " cannot point at places")


def test_doctor_with_the_server_down_says_which_server_and_how_to_start_it(monkeypatch):
    from tests.conftest import closed_port

    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = run("doctor", "--vlm-url", url, "--vlm-model", MODEL)
    rows = table_rows(result.output)
    assert rows["OpenAI-compatible server"].startswith(f"missing no answer at {url}")
    assert rows[f"VLM model {MODEL}"].startswith("missing unknown")
    assert "vllm serve" in result.output and "ollama serve" not in result.output


@pytest.fixture
def qwen_factory(tmp_path):
    from graphs import Settings, build_components

    built: list = []

    def factory():
        if not built:
            settings = Settings(data_dir=tmp_path / "data", vlm_url="http://gpu:8000",
                                vlm_model=MODEL, _env_file=None)
            built.append(build_components(settings, inpainter="opencv", segmenter=False))
        return built[0]

    yield factory
    for context in built:
        context.close()


def test_the_http_api_says_which_model_plans(qwen_factory):
    from fastapi.testclient import TestClient

    from interfaces.api import create_app

    with TestClient(create_app(qwen_factory), base_url=LOOPBACK) as client:
        body = client.get("/planner").json()
        spec = client.get("/openapi.json").json()
    assert body["server"] == "openai" and body["url"] == "http://gpu:8000/v1"
    assert (body["model"], body["family"], body["mode"]) == (MODEL, "qwen3-vl", "auto")
    assert body["summary"].startswith(f"{MODEL} (Qwen3-VL) on OpenAI-compatible server")
    schema = spec["paths"]["/planner"]["get"]["responses"]["200"]["content"]
    assert schema["application/json"]["schema"]["$ref"].endswith("/PlannerInfo")
    fields = spec["components"]["schemas"]["PlannerInfo"]["properties"]
    assert {"server", "url", "model", "family", "summary"} <= set(fields)
    assert all(field.get("description") for field in fields.values())


def test_the_mcp_server_says_which_model_plans(qwen_factory):
    import mcp

    from interfaces.mcp_server import create_mcp_server

    async def read() -> dict:
        async with mcp.Client(create_mcp_server(qwen_factory)) as client:
            listed = await client.list_resources()
            assert "brushedit://planner" in [str(r.uri) for r in listed.resources]
            found = await client.read_resource("brushedit://planner")
            return json.loads(found.contents[0].text)

    info = anyio.run(read)
    assert (info["server"], info["family"], info["grounding"]) == ("openai", "qwen3-vl", "strong")
