"""`brushedit serve --ray`: the HTTP API on Ray Serve, its inpainter on 2 replicas.

One local Ray cluster (2 CPUs) for the module; the conductor is the OpenCV fill (no weights),
the planner the rule parser, masks explicit. Clients speak plain HTTP to Serve's proxy.
"""

from __future__ import annotations

import json
import socket
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from graphs.settings import Settings
from tests.interfaces.test_api_server import edit_files
from tools.errors import ConfigError

ray = pytest.importorskip("ray", reason="Ray is optional (pip install 'brushedit-agents[ray]')")
serve = pytest.importorskip("ray.serve", reason="Ray Serve is optional (the `ray` extra)")
# every test that starts a Ray cluster runs on the same xdist worker, one cluster at a time
pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.slow]

EDITS = 6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served_api(tmp_path_factory):
    from interfaces.api.ray_serve import start_on_ray

    scratch_before = set(Path(tempfile.gettempdir()).glob("brushedit-replica-*"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    settings = Settings(data_dir=tmp_path_factory.mktemp("served"), serve_replicas=2,
                        serve_cpus_per_replica=0.5, _env_file=None)
    port = free_port()
    start_on_ray(settings, address="local", port=port, inpainter="opencv", planner="rules")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
    ray.shutdown()
    left = set(Path(tempfile.gettempdir()).glob("brushedit-replica-*")) - scratch_before
    assert not left, f"stopped replicas left their scratch folders: {sorted(left)}"


def events_of(client: httpx.Client, location: str) -> list[dict]:
    """The `data` of every server-sent event an edit emitted (replayed from the job store)."""
    text = client.get(location + "/events").text
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def post_edit(client: httpx.Client, instruction: str, **options: int) -> httpx.Response:
    """A new session's one-attempt edit of the test picture with its mask, waited for."""
    session = client.post("/sessions").json()["id"]
    return client.post(f"/sessions/{session}/edits", files=edit_files(), data={
        "instruction": instruction, "options": json.dumps({"max_attempts": 1, **options})})


def test_six_concurrent_edits_succeed_and_both_replicas_serve(served_api):
    def edit(index: int) -> tuple[dict, list[dict]]:
        with httpx.Client(base_url=served_api, timeout=300) as client:
            answer = post_edit(client, "remove the dark square", seed=index)
            assert answer.status_code == 201, answer.text
            return answer.json(), events_of(client, answer.headers["location"])

    with ThreadPoolExecutor(EDITS) as pool:
        done = list(pool.map(edit, range(EDITS)))
    assert all(body["status"] == "done" and body["result"]["image"] for body, _ in done)
    served = [e for _, events in done for e in events if e.get("type") == "served"]
    assert len(served) == EDITS and {e["component"] for e in served} == {"inpainter"}
    assert len({e["replica"] for e in served}) == 2, served  # both replicas painted some
    progress = [e for _, events in done for e in events if e.get("type") == "progress"]
    assert progress and all(e["node"] == "inpaint" for e in progress)  # streamed back


def test_a_refusal_travels_back_in_api_words(served_api):
    """The replica's `UnsupportedEditError` (OpenCV cannot add things) keeps its class, so the
    API answers 422 with its sentence, as it does without Ray."""
    with httpx.Client(base_url=served_api, timeout=300) as client:
        answer = post_edit(client, "add a red ball")
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["type"] == "UnsupportedEditError" and "opencv" in error["message"]


def test_serve_config_deploys_the_same_application(monkeypatch, tmp_path):
    """docs/serve_config.yaml is a valid Serve config whose application builder reads the
    deployments' replicas, GPUs and autoscaling bounds from its `BRUSHEDIT_*` variables."""
    yaml = pytest.importorskip("yaml")
    from ray.serve.schema import ServeDeploySchema

    from graphs.serving import deployment_options
    from graphs.settings import load_settings
    from interfaces.api.ray_serve import build_app
    from tests.graphs.batch_helpers import REPO

    config = ServeDeploySchema.model_validate(
        yaml.safe_load((REPO / "docs" / "serve_config.yaml").read_text()))
    (application,) = config.applications
    assert application.import_path == "interfaces.api.ray_serve:build_app"
    for name, value in application.runtime_env["env_vars"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BRUSHEDIT_DATA_DIR", str(tmp_path))
    options = deployment_options(load_settings())
    assert options == {
        "ray_actor_options": {"num_cpus": 2.0, "num_gpus": 1.0}, "max_ongoing_requests": 1,
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 8, "initial_replicas": 2,
                               "target_ongoing_requests": 1},
    }
    assert isinstance(build_app(application.args), serve.Application)
    with pytest.raises(ConfigError, match="unknown application args replicas"):
        build_app({"replicas": 3})


def test_replica_bounds_that_contradict_are_one_sentence(tmp_path):
    from graphs.serving import deployment_options

    fixed = deployment_options(Settings(data_dir=tmp_path, serve_replicas=3, _env_file=None))
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    with pytest.raises(ConfigError, match=r"MIN_REPLICAS \(5\) is above .*MAX_REPLICAS \(2\)"):
        deployment_options(Settings(data_dir=tmp_path, serve_min_replicas=5,
                                    serve_max_replicas=2, _env_file=None))


def test_the_api_replica_admits_enough_edits_for_the_model_deployments(tmp_path, monkeypatch):
    """Edits that wait on a model replica are not refused as busy because the ingress's own
    machine has few cores; a user's BRUSHEDIT_MAX_CONCURRENT_EDITS still decides."""
    from graphs.serving import QUEUED_EDITS_PER_CALL, served_edit_slots

    monkeypatch.setattr("os.cpu_count", lambda: 2)

    def slots(**chosen) -> int:
        return served_edit_slots(Settings(data_dir=tmp_path, _env_file=None, **chosen))

    assert slots() == max(2, QUEUED_EDITS_PER_CALL)  # one replica, one call at a time
    assert slots(serve_replicas=2, serve_max_ongoing_requests=3) == QUEUED_EDITS_PER_CALL * 6
    assert slots(serve_max_replicas=8) == QUEUED_EDITS_PER_CALL * 8  # autoscaling's bound
    assert slots(serve_replicas=8, max_concurrent_edits=3) == 3
