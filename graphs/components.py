"""Assembling a run `Context` from `Settings`: models, stores, checkpointers.

Tests, the CLI, the servers and the evals each assemble their own context (a scripted VLM, a toy
segmenter, an in-memory checkpointer). `build_components` is the app-layer factory that reads
`Settings`; it loads nothing heavy: the segmenter, BrushNet and the diffusers conductors are
`LazyModel`s built on first use, so offline runs and the opencv inpainter never touch model
weights. The LangGraph server's
runs bring no Python context: `run_context` lends them `ServerContext`'s bundle, built from
`Settings` on the first run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphs.admission import EditSlots
from graphs.artifacts import ArtifactStore
from graphs.claims import SessionClaims
from graphs.context import Context, GraphSettings, PlannerMode
from graphs.handles import LazyModel
from graphs.input_access import InputAccess
from graphs.otel import span_export_from_env
from graphs.sqlite_files import connect
from graphs.traces import TraceStore
from tools.errors import ConfigError, InvalidRequestError
from tools.registry import CONDUCTOR_NAMES, INPAINTER_NAMES

if TYPE_CHECKING:
    from graphs.settings import Settings

__all__ = ["ServerContext", "build_components", "check_data_dir", "checkpointer_target",
           "conductor_models", "load_conductor_model", "open_checkpointer", "run_context"]


def build_components(
    settings: Settings,
    *,
    inpainter: str = "brushnet",
    planner: PlannerMode = "auto",
    segmenter: bool = True,
    persist: bool = True,
    max_attempts: int | None = None,
    input_roots: tuple[Path, ...] | None = None,
) -> Context:
    """Assemble a `Context` from `Settings` (the app layer's job; nothing heavy loads here).

    Args:
        settings: where models, data and the database are.
        inpainter: default inpainter: `brushnet`, `opencv` or a diffusers conductor
            (`flux-fill`, ...); every one stays available by name, built on first use.
        planner: `auto` tries the VLM (Ollama, or the OpenAI-compatible server at
            `settings.vlm_url`) and falls back to the rule parser; `vlm` fails when the VLM
            does; `rules` never calls it.
        segmenter: build a (lazy) GroundingDINO + SAM segmenter; False for user masks only.
        persist: open the session checkpointer (SQLite in `data_dir`, or Postgres when
            `database_url` says so); False opens none: each session object keeps its
            checkpoints in memory (evals, the LangGraph server's bundle).
        max_attempts: overrides `settings.max_attempts`.
        input_roots: folders local image paths must lie in; None (a person's own command
            line, a Python caller) reads any path. Private URLs follow
            `settings.allow_private_urls` either way.
    """
    if inpainter not in INPAINTER_NAMES:
        raise InvalidRequestError(
            f"unknown inpainter `{inpainter}`; choose one of {', '.join(INPAINTER_NAMES)}"
        )
    data_dir = check_data_dir(settings.data_dir)
    vlm = None
    if planner != "rules":
        from graphs.vlm_setup import build_vlm

        vlm = build_vlm(settings)
    seg = LazyModel(lambda: _load_segmenter(settings), "segmenter") if segmenter else None
    saver = open_checkpointer(settings) if persist else None
    return Context(
        store=ArtifactStore(data_dir / "artifacts"),
        traces=TraceStore(data_dir / "traces.sqlite", export=span_export_from_env()),
        vlm=vlm,
        segmenter=seg,
        inpainters={
            "brushnet": LazyModel(lambda: _load_brushnet(settings), "inpainter:brushnet"),
            "opencv": LazyModel(_load_opencv, "inpainter:opencv"),
            **conductor_models(settings),
        },
        settings=GraphSettings(
            max_attempts=max_attempts or settings.max_attempts,
            planner=planner,
            inpainter=inpainter,
            max_image_side=settings.max_image_side,
        ),
        checkpointer=saver,
        inputs=InputAccess(roots=input_roots, allow_private_urls=settings.allow_private_urls),
        claims=SessionClaims.for_checkpointer(saver) if saver is not None else None,
        slots=EditSlots(settings.edit_slots()),
    )


class ServerContext:
    """The context of runs that bring none (the LangGraph server's), built on the first run.

    One per server process: importing `graphs.app` builds nothing, the first run or artifact
    request does. Sessions are the server's own, so no session database opens.
    """

    def __init__(self, build: Callable[[], Context] | None = None) -> None:
        self._build = build or self._from_settings
        self._built: Context | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _from_settings() -> Context:
        """Whoever reaches the server is its client: local paths only inside
        `BRUSHEDIT_INPUT_ROOTS` (none by default)."""
        from graphs.input_access import parse_roots
        from graphs.settings import Settings

        settings = Settings()
        return build_components(settings, persist=False,
                                input_roots=parse_roots(settings.input_roots))

    def get(self) -> Context:
        with self._lock:
            if self._built is None:
                self._built = self._build()
            return self._built


SERVER_CONTEXT = ServerContext()
"""The LangGraph server's lazily built context (see `run_context`)."""


def run_context(context: Context | dict[str, Any] | None) -> Context:
    """The context a node runs with: the caller's own, or the server's bundle with its knobs.

    A caller's context has its stores; a server run's is built from JSON (only knobs) or absent.
    Knobs that are all `GraphSettings`' defaults (or none) leave the server bundle's own, those
    `Settings` gave it (`BRUSHEDIT_MAX_ATTEMPTS`, ...).
    """
    if isinstance(context, dict):
        context = Context(**context)
    if context is not None and context.store is not None:
        return context
    server = SERVER_CONTEXT.get()
    if context is None or context.settings == GraphSettings():
        return server
    return dataclasses.replace(server, settings=context.settings)


def _require_local_weights(settings: Settings, checks: Callable[[Settings], list], what: str,
                           **whose: Any) -> None:
    """Fail in a sentence, before any Hub retry, when a model is missing and downloads are off."""
    if settings.allow_downloads:
        return
    from graphs.weights import missing_weights_error

    error = missing_weights_error(checks(settings), what, **whose)
    if error is not None:
        raise error


def check_data_dir(data_dir: str | Path) -> Path:
    """The data folder, created if needed, or a `ConfigError` saying why it cannot be used."""
    import tempfile

    path = Path(data_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".brushedit-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(
            f"the data folder {path} cannot be used ({exc.strerror or exc}); point "
            "BRUSHEDIT_DATA_DIR at a folder you can write"
        ) from None
    return path


def _load_segmenter(settings: Settings) -> Any:
    from graphs.weights import segmenter_weight_checks
    from tools.segment import GroundedSegmenter

    _require_local_weights(settings, segmenter_weight_checks, "segmenter (GroundingDINO + SAM)",
                           segmenter=True)

    device = settings.resolved_device()
    return GroundedSegmenter.from_pretrained(
        settings.detector, settings.sam, device=device, dtype=settings.resolved_dtype(device),
        local_files_only=not settings.allow_downloads,
    )


def _load_brushnet(settings: Settings) -> Any:
    from graphs.weights import inpainter_weight_checks
    from tools.inpaint import BrushNetInpainter

    _require_local_weights(settings, inpainter_weight_checks, "BrushNet inpainter",
                           inpainter="brushnet")

    device = settings.resolved_device()
    return BrushNetInpainter.from_pretrained(
        settings.base_model, settings.brushnet, brushnet_subfolder=settings.brushnet_subfolder,
        device=device, dtype=settings.resolved_dtype(device),
        local_files_only=not settings.allow_downloads, cpu_offload=False,
        sdxl_working_side=settings.sdxl_working_side, compile=settings.compile,
    )


def conductor_models(settings: Settings) -> dict[str, LazyModel]:
    """A `LazyModel` per diffusers conductor (`tools.registry.CONDUCTOR_NAMES`), each loaded
    from its `BRUSHEDIT_<NAME>_MODEL` setting on first use."""
    return {
        name: LazyModel(lambda name=name: load_conductor_model(settings, name),
                        f"inpainter:{name}")
        for name in CONDUCTOR_NAMES
    }


def load_conductor_model(settings: Settings, name: str) -> Any:
    """Conductor `name` from `settings`: its weights setting, the device, bfloat16 on a GPU
    unless `dtype` says otherwise, the offload and working-size settings; nothing downloads
    unless `allow_downloads`. A wrong folder or missing weights raise `tools.errors`'
    `WrongPipelineError` / `MissingWeightsError` before anything loads."""
    from tools.conductors import load_conductor

    device = settings.resolved_device()
    return load_conductor(
        name, settings.conductor_model(name), device=device,
        dtype=settings.conductor_dtype(device), local_files_only=not settings.allow_downloads,
        offload=settings.conductor_offload, working_side=settings.conductor_working_side,
    )


def _load_opencv() -> Any:
    from tools.inpaint import OpenCVInpainter

    return OpenCVInpainter()


# -- checkpointers -------------------------------------------------------------------------------


def checkpointer_target(database_url: str | None, sqlite_path: Path) -> tuple[str, str]:
    """Which saver a URL selects: ("postgres", url) or ("sqlite", file path)."""
    url = (database_url or "").strip()
    if not url:
        return "sqlite", str(sqlite_path)
    if url.startswith(("postgres://", "postgresql://", "postgresql+psycopg://")):
        return "postgres", url.replace("postgresql+psycopg://", "postgresql://", 1)
    if url.startswith("sqlite:///"):
        return "sqlite", url.removeprefix("sqlite:///") or str(sqlite_path)
    if url.startswith("sqlite://"):
        return "sqlite", url.removeprefix("sqlite://") or str(sqlite_path)
    raise ConfigError(
        f"BRUSHEDIT_DATABASE_URL must start with postgresql:// or sqlite:///, got `{url[:40]}`"
    )


def open_checkpointer(settings: Settings) -> Any:
    """A LangGraph saver for `settings`: SqliteSaver in `data_dir` unless a postgres URL is set."""
    kind, target = checkpointer_target(settings.database_url, settings.sqlite_path)
    if kind == "postgres":
        return _open_postgres(target)
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    path = Path(target).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(path)  # WAL, and a deleted session's text overwritten
        saver = SqliteSaver(conn)
        saver.setup()
    except (OSError, sqlite3.DatabaseError) as exc:
        raise ConfigError(
            f"the session database {path} cannot be used ({exc}); move it aside or point "
            "BRUSHEDIT_DATABASE_URL elsewhere"
        ) from None
    return saver


POSTGRES_CONNECT_TIMEOUT_S = 10
"""Seconds to wait for the server before saying it cannot be reached (psycopg waits forever)."""
POSTGRES_SETUP_LOCK = 0x6272_7573_6865_6469  # "brushedi": one advisory lock id for migrations


def _open_postgres(url: str) -> Any:
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg import Connection
        from psycopg.rows import dict_row
    except ImportError as exc:
        raise ConfigError(
            "BRUSHEDIT_DATABASE_URL is a postgres URL but the Postgres saver is not installed; "
            "run `pip install 'brushedit-agents[postgres]'`"
        ) from exc
    timeout = {} if "connect_timeout" in url else {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
    try:
        conn = Connection.connect(
            url, autocommit=True, prepare_threshold=0, row_factory=dict_row, **timeout
        )
    except Exception as exc:  # psycopg's errors are many; all mean "cannot connect"
        raise ConfigError(
            f"cannot connect to the Postgres database: {' '.join(str(exc).split())}"
        ) from exc
    saver = PostgresSaver(conn)
    with _postgres_setup_lock(conn):
        saver.setup()
    return saver


@contextlib.contextmanager
def _postgres_setup_lock(conn: Any, *, wait_s: float = 120.0) -> Iterator[None]:
    """Let one process at a time run the saver's migrations (others would hit duplicate tables).

    A session-level advisory lock, polled with `pg_try_advisory_lock`: a waiter blocked inside
    `pg_advisory_lock` would hold a transaction open, and the migrations' `CREATE INDEX
    CONCURRENTLY` waits for every open transaction, so the two would deadlock.
    """
    deadline = time.monotonic() + wait_s
    while not conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (POSTGRES_SETUP_LOCK,)
                           ).fetchone()["ok"]:
        if time.monotonic() > deadline:
            raise ConfigError(
                f"the Postgres database's session tables are being set up by another process "
                f"that has not finished in {wait_s:.0f} s"
            )
        time.sleep(0.05)
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (POSTGRES_SETUP_LOCK,))
