"""What a LangGraph-server client can send the graph that a typed caller never would.

The server hands `start` whatever JSON arrived (a `TypedDict` is not validated), so every wrong
type, out-of-range number and odd image reference must come back as one sentence naming the
field (a `BrushEditError`), never a TypeError, a pydantic dump or an OverflowError from SQLite.
"""

from __future__ import annotations

import base64
import io
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from graphs.graph import build_graph
from tests.conftest import closed_port as free_port
from tests.graphs.helpers import make_components, object_mask, picture
from tools.errors import BrushEditError, UnsupportedEditError


def _uri(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def graph_and_photo(tmp_path, monkeypatch):
    """The compiled graph run as the LangGraph server runs it: no Python context, so the nodes
    use the server's bundle (here the test's components) and `start` checks the raw input."""
    from graphs import components as built

    components = make_components(tmp_path / "data")
    monkeypatch.setattr(built, "SERVER_CONTEXT", built.ServerContext(lambda: components))
    photo = tmp_path / "photo.png"
    picture().save(photo)
    yield build_graph(checkpointer=components.checkpointer), str(photo)
    components.close()


def _refusal(graph, request, thread="t") -> BrushEditError:
    with pytest.raises(BrushEditError) as info:
        graph.invoke(request, {"configurable": {"thread_id": thread}})
    message = str(info.value)
    assert "\n" not in message and "pydantic" not in message and "Traceback" not in message
    return info.value


BAD_FIELDS = [
    ({"instruction": 5}, "`instruction` must be text"),
    ({"instruction": "x" * 5000}, "`instruction` has 5,000 characters"),
    ({"caption": ["a"]}, "`caption` must be text"),
    ({"image": 5}, "`image` must be a path"),
    ({"image": {"path": "a.png"}}, "got an object"),
    ({"image": "/tmp/a\x00b.png"}, "NUL character"),
    ({"mask": [[255, 0]]}, "`mask` must be a path"),
    ({"options": "fast"}, "`options` must be an object"),
    ({"options": {"sed": 5}}, "unknown option(s) sed"),
    ({"options": {"seed": 2**70}}, "`options.seed`"),
    ({"options": {"steps": 10**9}}, "`options.steps`"),
    ({"options": {"guidance_scale": "loud"}}, "`options.guidance_scale`"),
    ({"options": {"inpainter": "nope"}}, "`options.inpainter`"),
    ({"review_mask": "no"}, "`review_mask` must be true or false"),
    ({"turn": "x"}, "`turn` must be a whole number"),
    ({"turn": 10**30}, "`turn` must be a whole number"),
    ({"image": "http://[::1"}, "could not fetch the image"),
]


@pytest.mark.parametrize(("change", "expected"), BAD_FIELDS, ids=[e for _, e in BAD_FIELDS])
def test_a_bad_field_is_one_sentence_naming_it(graph_and_photo, change, expected):
    graph, photo = graph_and_photo
    request = {"image": photo, "instruction": "remove the dark square",
               "mask": _uri(object_mask()), "options": {"inpainter": "opencv"}, **change}
    assert expected in str(_refusal(graph, request))


def test_a_bad_turn_on_a_used_thread_is_refused_too(graph_and_photo):
    graph, photo = graph_and_photo
    request = {"image": photo, "instruction": "remove the dark square",
               "mask": _uri(object_mask()), "options": {"inpainter": "opencv"}}
    config = {"configurable": {"thread_id": "used"}}
    assert graph.invoke(request, config)["result"]["accepted"]
    # `turn` is compared with the thread's last turn before `start` runs: no TypeError there.
    assert "`turn`" in str(_refusal(graph, {**request, "turn": "2"}, "used"))


def test_an_unusable_review_answer_is_asked_again_and_the_thread_goes_on(graph_and_photo,
                                                                          tmp_path):
    """A resume value is stored with the thread: a refused one must not be replayed forever."""
    from langgraph.types import Command

    graph, photo = graph_and_photo
    config = {"configurable": {"thread_id": "review"}}
    paused = graph.invoke({"image": photo, "instruction": "remove the dark square",
                           "mask": _uri(object_mask()), "options": {"inpainter": "opencv"},
                           "review_mask": True}, config)
    assert paused.get("__interrupt__")
    for answer, words in (({"approve": "false"}, "`approve` is the text 'false'"),
                          ({"mask": 7}, "`mask` must be a path"),
                          ({"aprove": True}, "aprove is not one of them"),
                          ({"mask": str(tmp_path / "typo.png")}, "typo.png"),
                          ("yes", "must be {'approve': true}")):
        again = graph.invoke(Command(resume=answer), config)
        payload = again["__interrupt__"][0].value
        assert payload["kind"] == "mask_review" and words in payload["error"], payload
        assert payload["notes"][0].startswith("the last answer was refused")
    done = graph.invoke(Command(resume={"approve": True}), config)
    assert done["result"]["accepted"] and "__interrupt__" not in done


def test_a_review_gives_up_after_many_unusable_answers(graph_and_photo, monkeypatch):
    from langgraph.types import Command

    import graphs.requests

    monkeypatch.setattr(graphs.requests, "MAX_REVIEW_ANSWERS", 2)
    graph, photo = graph_and_photo
    config = {"configurable": {"thread_id": "stubborn"}}
    graph.invoke({"image": photo, "instruction": "remove the dark square",
                  "mask": _uri(object_mask()), "options": {"inpainter": "opencv"},
                  "review_mask": True}, config)
    assert graph.invoke(Command(resume="no"), config)["__interrupt__"]
    with pytest.raises(BrushEditError, match="2 unusable answers"):
        graph.invoke(Command(resume="still no"), config)


def test_the_core_names_no_cli_flag_and_the_cli_adds_it(graph_and_photo):
    from interfaces.cli_errors import cli_message

    graph, photo = graph_and_photo
    request = {"image": photo, "instruction": "make the square red",
               "mask": _uri(object_mask()), "options": {"inpainter": "opencv"}}
    with pytest.raises(UnsupportedEditError) as info:
        graph.invoke(request, {"configurable": {"thread_id": "flags"}})
    assert "--" not in str(info.value) and "`brushnet` inpainter" in str(info.value)
    assert "`--inpainter brushnet`" in cli_message(info.value)


@pytest.fixture
def trickling_server():
    """An HTTP server that sends headers, then one body byte every 0.2 s (for 20 s at most)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                    for _ in range(100):
                        if stop.is_set():
                            break
                        conn.sendall(b"x")
                        time.sleep(0.2)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    listener.close()


def _private_urls_allowed(monkeypatch):
    """The server's context fetching loopback URLs (BRUSHEDIT_ALLOW_PRIVATE_URLS=1)."""
    import graphs.components as built
    from graphs.input_access import InputAccess

    context = built.SERVER_CONTEXT.get()
    monkeypatch.setattr(context, "inputs", InputAccess(allow_private_urls=True))


def test_a_trickling_url_is_cut_at_a_total_deadline(graph_and_photo, trickling_server,
                                                    monkeypatch):
    import graphs.input_access

    monkeypatch.setattr(graphs.input_access, "FETCH_TIMEOUT_S", 1.0)
    graph, _ = graph_and_photo
    _private_urls_allowed(monkeypatch)
    began = time.monotonic()
    error = _refusal(graph, {"image": f"{trickling_server}/slow.png",
                             "instruction": "remove the dark square"})
    assert time.monotonic() - began < 6  # 100 bytes at 0.2 s each would take 20 s
    assert "took over 1 s" in str(error)


def test_an_image_url_error_does_not_show_its_credentials(graph_and_photo, monkeypatch):
    graph, _ = graph_and_photo
    _private_urls_allowed(monkeypatch)
    closed_port = free_port()
    url = f"http://alice:s3cret-token@127.0.0.1:{closed_port}/x.png?sig=abcdef123"
    message = str(_refusal(graph, {"image": url, "instruction": "remove it"}))
    assert "could not fetch the image" in message and f"127.0.0.1:{closed_port}/x.png" in message
    assert "s3cret" not in message and "alice" not in message and "abcdef123" not in message


# -- issue 24 kinds 3 and 12 as the LangGraph server runs the graph ------------------------------


def _server_graph(monkeypatch, components):
    """`graphs.app.graph` (the class the server runs: its failures are what clients read) on
    the test's components, with an in-memory saver."""
    from langgraph.checkpoint.memory import InMemorySaver

    import graphs.app as app
    from graphs import components as built

    context = built.ServerContext(lambda: components)
    monkeypatch.setattr(built, "SERVER_CONTEXT", context)
    monkeypatch.setattr(app, "SERVER_CONTEXT", context)
    return app.graph.copy(update={"checkpointer": InMemorySaver()})


def _server_run(graph, photo: str) -> Exception:
    with pytest.raises(Exception) as info:
        graph.invoke({"image": photo, "instruction": "remove the dark square",
                      "mask": _uri(np.asarray(object_mask()))},
                     {"configurable": {"thread_id": "t"}})
    return info.value


def test_a_bug_reaches_a_server_client_as_internal_error_only(tmp_path, monkeypatch, caplog):
    """Kind 3: before, a failing node's raw text (`[Errno 17] File exists: '/…/b1'`) reached
    the client and the trace row."""
    from tests.interfaces.test_hostile_round import SECRET_PATH, broken_inpainter
    from tools.errors import InternalError

    components = make_components(tmp_path / "data", planner="rules",
                                 inpainters={"opencv": broken_inpainter()})
    photo = tmp_path / "photo.png"
    picture().save(photo)
    error = _server_run(_server_graph(monkeypatch, components), str(photo))
    assert type(error) is InternalError and str(error) == InternalError.MESSAGE
    assert SECRET_PATH in caplog.text  # the details: the server's log
    rows = [e for s in components.traces.sessions() for e in components.traces.events(s["id"])]
    assert rows and not [r for r in rows if SECRET_PATH in str(r)]
    assert any("InternalError" in str(r.get("error")) for r in rows)
    components.close()


@pytest.mark.parametrize(("mode", "kind"), [("http500", "VLMRequestError"),
                                            ("empty", "VLMBadResponseError"),
                                            ("cut", "VLMBadResponseError"),
                                            ("hang", "VLMTimeoutError")])
def test_a_model_server_fault_reaches_a_server_client_naming_that_server(
        tmp_path, monkeypatch, mode, kind):
    """Kind 12: before, a model server's 500, empty or never-valid answer read as the
    client's bad input."""
    from agents.ollama_vlm import OllamaVLM
    from tests.fakes.faulty_model_server import FaultyModelServer

    with FaultyModelServer(mode, hang_s=3) as fake:
        components = make_components(tmp_path / "data", planner="vlm", vlm=OllamaVLM(
            host=fake.url, timeout=1.0, retry_base_delay=0.01))
        photo = tmp_path / "photo.png"
        picture().save(photo)
        error = _server_run(_server_graph(monkeypatch, components), str(photo))
        components.close()
    assert type(error).__name__ == kind, repr(error)
    assert fake.url in str(error) and "Ollama" in str(error), str(error)


def test_past_the_bound_a_server_run_is_busy_and_the_slot_comes_back(tmp_path, monkeypatch):
    """Kind 11: BRUSHEDIT_MAX_CONCURRENT_EDITS bounds the LangGraph server's runs too."""
    from graphs.admission import EditSlots, ServerBusyError

    components = make_components(tmp_path / "data", planner="rules")
    components.slots = EditSlots(1)
    photo = tmp_path / "photo.png"
    picture().save(photo)
    graph = _server_graph(monkeypatch, components)
    held = components.slots.take()  # another run holds the only slot
    error = _server_run(graph, str(photo))
    assert isinstance(error, ServerBusyError) and "(1)" in str(error)
    held.release()
    done = graph.invoke({"image": str(photo), "instruction": "remove the dark square",
                         "mask": _uri(np.asarray(object_mask()))},
                        {"configurable": {"thread_id": "t2"}})
    assert done["result"]["image"]
    assert components.slots.take() is not None  # the finished run gave its slot back
    components.close()
