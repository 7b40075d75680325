"""Artifact store, trace migrations, checkpointer selection and the import-cost promises."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graphs.artifacts import ArtifactStore, write_image_atomic
from graphs.components import build_components, checkpointer_target, open_checkpointer
from graphs.settings import Settings
from graphs.traces import MIGRATIONS, TraceStore
from tests.graphs.helpers import object_mask, picture
from tools.errors import ConfigError, InvalidRequestError

REPO = Path(__file__).resolve().parents[2]


def test_artifacts_are_content_addressed_and_idempotent(tmp_path):
    store = ArtifactStore(tmp_path / "a")
    digest = store.put_image(picture())
    assert store.put_image(picture()) == digest and len(list(store.root.rglob("*.png"))) == 1
    assert np.array_equal(np.asarray(store.get_image(digest)), np.asarray(picture()))
    mask = store.put_mask(object_mask())
    assert np.array_equal(store.get_mask(mask), object_mask()) and store.path(mask).is_file()
    with pytest.raises(InvalidRequestError, match="not an artifact hash"):
        store.path("../../etc/passwd")
    with pytest.raises(InvalidRequestError, match="not in the store"):
        store.get_image("0" * 64)
    out = write_image_atomic(picture(), tmp_path / "o" / "x.jpg")
    assert out.is_file() and not list(out.parent.glob(".*.tmp"))


def test_trace_migrations_are_forward_only_and_recorded(tmp_path):
    path = tmp_path / "t.sqlite"
    TraceStore(path).close()
    store = TraceStore(path)  # re-opening applies nothing twice
    db = sqlite3.connect(path)
    applied = [r[0] for r in db.execute("SELECT name FROM _brushedit_migrations")]
    assert applied == [name for name, _ in MIGRATIONS] == ["m001_initial", "m002_turns",
                                                            "m003_call_family"]
    columns = {r[1] for r in db.execute("PRAGMA table_info(calls)")}
    assert {"event_id", "system", "prompt", "raw", "parsed", "model", "images", "family",
            "from_thinking"} <= columns
    event = store.record("s1", "classify", turn=1, attempt=1, outputs={"x": np.float32(0.5)},
                         calls=[{"model": "m", "system": "sys", "user": "u", "raw": "{}",
                                 "parsed": {"a": 1}, "duration_s": 0.25,
                                 "image_hashes": ["h"]}])
    (row,) = store.events("s1")
    assert row["id"] == event and row["outputs"] == {"x": 0.5}
    assert row["calls"][0]["prompt"] == "u" and row["calls"][0]["duration_ms"] == 250.0
    assert store.sessions()[0]["id"] == "s1" and store.events("other") == []
    assert (row["calls"][0]["family"], row["calls"][0]["from_thinking"]) == (None, None)


def test_a_log_from_before_families_is_upgraded_and_keeps_its_calls(tmp_path):
    """A trace log written before `m003_call_family` gains the columns; old calls read None."""
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE _brushedit_migrations (name TEXT PRIMARY KEY, applied TEXT)")
    for name, apply in MIGRATIONS[:2]:  # the log as the version before families wrote it
        apply(old)
        old.execute("INSERT INTO _brushedit_migrations VALUES (?, 'then')", (name,))
    old.execute("INSERT INTO sessions VALUES ('s', 'now', 'now', NULL)")
    old.execute("INSERT INTO events (session_id, node, status, started) "
                "VALUES ('s', 'classify', 'ok', 'now')")
    old.execute("INSERT INTO calls (event_id, session_id, model) VALUES (1, 's', 'ollama:m')")
    old.commit()
    old.close()
    store = TraceStore(path)
    store.record("s", "mask", calls=[{"model": "ollama:qwen3-vl:8b", "family": "qwen3-vl",
                                      "from_thinking": True, "raw": "{}"}])
    before, after = [e["calls"][0] for e in store.events("s")]
    assert (before["model"], before["family"], before["from_thinking"]) == ("ollama:m", None, None)
    assert (after["family"], after["from_thinking"]) == ("qwen3-vl", True)
    store.close()


def test_checkpointer_selection():
    default = Path("/data/sessions.sqlite")
    assert checkpointer_target(None, default) == ("sqlite", str(default))
    assert checkpointer_target("postgresql://u:p@h/db", default) == ("postgres",
                                                                    "postgresql://u:p@h/db")
    assert checkpointer_target("postgres://h/db", default)[0] == "postgres"
    assert checkpointer_target("sqlite:////tmp/x.sqlite", default) == ("sqlite", "/tmp/x.sqlite")
    with pytest.raises(ConfigError, match="postgresql://"):
        checkpointer_target("mysql://h/db", default)


def test_postgres_url_without_the_extra_says_how_to_install(tmp_path):
    try:
        import langgraph.checkpoint.postgres  # noqa: F401
    except ImportError:
        settings = Settings(data_dir=tmp_path, database_url="postgresql://u@127.0.0.1:1/db")
        with pytest.raises(ConfigError, match=r"brushedit-agents\[postgres\]"):
            open_checkpointer(settings)
    else:
        pytest.skip("the postgres extra is installed")


def test_unreachable_postgres_is_one_sentence(tmp_path):
    pytest.importorskip("langgraph.checkpoint.postgres")
    from tests.conftest import closed_port

    url = f"postgresql://u@127.0.0.1:{closed_port()}/db"
    with pytest.raises(ConfigError, match="cannot connect to the Postgres database") as caught:
        open_checkpointer(Settings(data_dir=tmp_path, database_url=url, _env_file=None))
    assert "\n" not in str(caught.value)


def test_build_components_loads_no_weights(tmp_path):
    settings = Settings(data_dir=tmp_path)
    components = build_components(settings, inpainter="opencv", planner="rules")
    assert components.vlm is None and not components.segmenter.loaded
    assert components.settings.inpainter == "opencv"
    assert (tmp_path / "sessions.sqlite").is_file()
    with pytest.raises(InvalidRequestError, match="brushnet, opencv"):
        build_components(settings, inpainter="dalle")
    components.close()


def test_import_graphs_is_light_and_langgraph_json_points_at_app():
    code = ("import sys, graphs, interfaces.cli; "
            "print(sorted(m for m in ('torch', 'langgraph', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
    config = json.loads((REPO / "langgraph.json").read_text())
    assert config["graphs"]["editor"] == "./graphs/app.py:graph"


def test_server_graph_is_compiled_without_a_checkpointer(monkeypatch):
    import importlib

    app = importlib.import_module("graphs.app")
    assert app.graph.checkpointer is None
    assert {"start", "classify", "mask", "review", "inpaint", "verify"} <= set(app.graph.nodes)
    from graphs.context import Context
    from graphs.graph import build_graph

    with pytest.raises(TypeError, match="context=components"):  # the old call shape says why
        build_graph(Context())


def test_a_run_without_handles_borrows_the_default_context_with_its_own_knobs(
    tmp_path, monkeypatch
):
    """What a LangGraph-server run gets: its JSON knobs on the process's one lazy bundle."""
    from graphs import components as built
    from graphs.context import Context

    monkeypatch.setenv("BRUSHEDIT_DATA_DIR", str(tmp_path / "server"))
    monkeypatch.setattr(built, "SERVER_CONTEXT", built.ServerContext())
    assert not hasattr(built, "Components")  # one name for the run context: `Context`
    default = built.run_context(None)
    assert default.store is not None and default.traces is not None
    assert default.checkpointer is None and not default.segmenter.loaded
    assert built.run_context(Context()) is default and built.run_context({}) is default
    knobs = built.run_context({"settings": {"planner": "rules", "max_attempts": 1}})
    assert knobs is not default and knobs.store is default.store
    assert knobs.settings.planner == "rules" and default.settings.planner == "auto"
    # the same handles: models built once, one VLM probe
    assert knobs.inpainters is default.inpainters and knobs.vlm_probe is default.vlm_probe
    own = build_components(Settings(data_dir=tmp_path / "own"), planner="rules", persist=False)
    assert built.run_context(own) is own
    with pytest.raises(ConfigError, match="unknown context settings colour"):
        Context(settings={"colour": "red"})
    own.close()
    default.close()


def test_processes_opening_new_trace_databases_together_all_succeed(tmp_path):
    """Eval workers and Ray tasks open the same new database at once: the WAL switch and the
    migrations must not fail with "database is locked" or "table already exists"."""
    import time

    code = (
        "import sys, time; from pathlib import Path; from graphs.traces import TraceStore\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "for i in range(8):\n"
        "    TraceStore(Path(sys.argv[1]) / f'traces-{i}.sqlite').close()\n"
    )
    start = f"{time.time() + 3.0:.3f}"  # all start at the same moment
    workers = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), start], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [w.communicate(timeout=120)[1].decode() for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, errors
    for i in range(8):
        db = sqlite3.connect(tmp_path / f"traces-{i}.sqlite")
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = db.execute("SELECT name FROM _brushedit_migrations").fetchall()
        assert sorted(r[0] for r in rows) == sorted(name for name, _ in MIGRATIONS)
