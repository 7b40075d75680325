"""Shared test setup: nothing touches the real user data, the Hub or all the CPU cores."""

from __future__ import annotations

import contextlib
import os
import socket

import pytest

# Under pytest-xdist each worker gets one intra-op thread: workers already fill the cores, and
# tiny models gain nothing from more (idle-spinning threads only stall the other worker).
_THREADS = "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2"
os.environ.setdefault("OMP_NUM_THREADS", _THREADS)
os.environ.setdefault("MKL_NUM_THREADS", _THREADS)  # read by torch when it is first imported
os.environ["HF_HUB_OFFLINE"] = "1"

with contextlib.suppress(ImportError):  # the agents' Ollama test server, for every package
    from tests.fakes.ollama_server import fake_ollama  # noqa: F401


def closed_port() -> int:
    """A loopback port nothing listens on (free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_real_ollama(monkeypatch):
    """Settings point at a closed port: no test reaches an Ollama server it did not start."""
    monkeypatch.setenv("BRUSHEDIT_OLLAMA_HOST", f"http://127.0.0.1:{closed_port()}")
    for name in ("URL", "MODEL", "API_KEY", "FAMILY"):  # an OpenAI-compatible server: none
        monkeypatch.delenv(f"BRUSHEDIT_VLM_{name}", raising=False)


@pytest.fixture(autouse=True)
def _isolated_dirs(monkeypatch, tmp_path):
    """Data, config and cache dirs under tmp_path; the Hub offline."""
    monkeypatch.setenv("BRUSHEDIT_DATA_DIR", str(tmp_path / "brushedit-data"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("BRUSHEDIT_DATABASE_URL", raising=False)  # tests choose their database


@pytest.fixture(scope="session")
def tiny_conductor_dirs(tmp_path_factory):
    """Each diffusers conductor's tiny random-weight pipeline, saved with `save_pretrained` (no
    downloads), built once per session for every package's tests: {name: folder}."""
    from tests.tools.conductor_parts import save_tiny_conductors

    return save_tiny_conductors(tmp_path_factory.mktemp("tiny_conductors"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one torch thread; two fight the other tests for two shared
    cores. Restores the count afterwards (module scope: use with `usefixtures`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`--dist loadgroup`), each module runs whole on one worker, so its
    module-scoped fixtures (tiny models, servers, Ray clusters) are built once, not once per
    worker; tests marked with their own `xdist_group` (those that start Ray) keep it.

    Groups holding a `slow` or `browser` test are handed out first (`make test` passes
    `--no-loadscope-reorder`, which keeps this order), so no long group starts last."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    if not getattr(config.option, "loadgroup", False):
        return  # one process: keep pytest's order (module fixtures stay built once)
    long_groups = {_group(item) for item in items
                   if item.get_closest_marker("slow") or item.get_closest_marker("browser")}
    items.sort(key=lambda item: _group(item) not in long_groups)  # stable


def _group(item) -> str:
    mark = item.get_closest_marker("xdist_group")
    return mark.args[0] if mark.args else mark.kwargs.get("name", "default")


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook, run on the controller
def pytest_xdist_node_collection_finished(node, ids):
    """Refuse to run ungrouped: pytest-xdist marks a grouped test by suffixing its node id, and a
    pytest that drops the suffix (9.2, pytest-dev/pytest-xdist#1386) would silently spread each
    module over every worker (fixtures built twice, Ray clusters started side by side)."""
    if node.config.getoption("dist") != "loadgroup":
        return
    ungrouped = [nodeid for nodeid in ids if "@" not in nodeid.rpartition("]")[2]]
    if ungrouped:
        pytest.exit(
            f"pytest {pytest.__version__} dropped pytest-xdist's test groups ({ungrouped[0]} has none): "
            "install the pytest the dev extra pins (pip install -e '.[dev]')",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
