"""Graph-test fixtures: a tiny BrushNet when the package has one, SQLite and PostgreSQL savers."""

from __future__ import annotations

import os
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

POSTGRES_URL = (
    os.environ.get("BRUSHEDIT_TEST_DATABASE_URL") or os.environ.get("BRUSHEDIT_DATABASE_URL") or ""
).strip()
"""The server the session tests also run against (read before tests clear the variable)."""


@pytest.fixture(scope="session")
def tiny_brushnet(tmp_path_factory):
    """`tools.inpaint.BrushNetInpainter` around a random-weight tiny pipeline (seconds on CPU)."""
    pytest.importorskip("brushedit_inpaint")
    import torch

    from tests.brushedit_inpaint.conftest import make_tiny_pipeline
    from tools.inpaint import BrushNetInpainter

    torch.set_num_threads(2)
    return BrushNetInpainter(make_tiny_pipeline(tmp_path_factory.mktemp("tok")))


def _with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _postgres_or_skip() -> str:
    """A fresh schema on the configured PostgreSQL server, as a URL; skips with the reason."""
    if not POSTGRES_URL.startswith(("postgres://", "postgresql://")):
        pytest.skip("no PostgreSQL server configured: set BRUSHEDIT_DATABASE_URL to a "
                    "postgresql:// URL (.ci/run starts one on loopback)")
    try:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the postgres extra is not installed ({exc.name})")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.Error as exc:
        pytest.skip(f"the PostgreSQL server at BRUSHEDIT_DATABASE_URL is not reachable: "
                    f"{' '.join(str(exc).split())[:200]}")
    return schema


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request):
    """None (SQLite in the data folder) or a postgresql:// URL to a throwaway schema."""
    if request.param == "sqlite":
        yield None
        return
    schema = _postgres_or_skip()
    yield _with_search_path(POSTGRES_URL, schema)
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
