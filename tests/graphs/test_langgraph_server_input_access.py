"""Issue 24 kind 1 against the real `langgraph dev` server, as a hostile client or web page.

The server runs as it ships (no private URLs, no allowed origins) with one input folder: no
file outside that folder is read, whatever the spelling (`..`, `~`, a symlink, a NUL byte, a
name too long), no loopback, link-local or private address is fetched, whatever the spelling
(`0x7f.1`, `[::ffff:127.0.0.1]`, `localhost`), every refusal is one answer (no disk or port
map), and no page of another origin or another `Host` gets an answer. The in-process checks
of the same rules are at the bottom.
"""

from __future__ import annotations

import http.server
import os
import threading

import httpx
import pytest

from tests.graphs import test_langgraph_server as base
from tests.graphs.test_langgraph_server import pytestmark  # noqa: F401 - the skip marker

RULES = {"settings": {"planner": "rules", "inpainter": "opencv", "max_attempts": 1}}
REFUSED_PATH = ("the image reference is not a file this server reads: local paths are read "
                "only inside the server's input folders (BRUSHEDIT_INPUT_ROOTS)")
REFUSED_URL = "points at a loopback, link-local or private address, which this server does not"
ALLOWED_ORIGIN = "https://smith.langchain.com"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """(server url, input folder, secret file, loopback web server (url, hits)): a shipped
    server reading one folder, a mode-0600 secret beside it and a no-token service on
    loopback whose every request is counted."""
    tmp = tmp_path_factory.mktemp("lg-hostile")
    inputs, private = tmp / "inputs", tmp / "private"
    (inputs / "sub").mkdir(parents=True)
    private.mkdir()
    base._photo(inputs)
    secret = base._photo(private).rename(private / "secret.png")
    secret.chmod(0o600)
    (inputs / "notes.png").write_text("not an image\n")
    (inputs / "link.png").symlink_to(secret)
    (inputs / "out").symlink_to(private, target_is_directory=True)
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(private), **kwargs)

        def log_message(self, *args):
            hits.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        for url, _ in base.running_server(tmp, BRUSHEDIT_INPUT_ROOTS=str(inputs),
                                          BRUSHEDIT_CORS_ORIGINS=ALLOWED_ORIGIN):
            yield url, inputs, secret, (f"127.0.0.1:{httpd.server_address[1]}", hits)
    finally:
        httpd.shutdown()
        httpd.server_close()


def _errors(url: str, images: list[str]) -> list[dict]:
    """Each image sent as a run's input on a thread of its own: each run's error (its output
    when it has none), in order."""
    import asyncio

    from langgraph_sdk import get_client

    async def go():
        client = get_client(url=url)
        assistant = await base._assistant(client)

        async def one(image):
            thread = (await client.threads.create())["thread_id"]
            out = await client.runs.wait(thread, assistant, context=RULES, raise_error=False,
                                         input={"image": image, "mask": base._mask_uri(),
                                                "instruction": "remove the dark square"})
            return out.get("__error__") or out if isinstance(out, dict) else out

        return await asyncio.gather(*(one(image) for image in images))

    return base._run(go())


def test_no_path_outside_the_input_folder_is_read_and_all_get_one_answer(hostile):
    """Before: a mode-0600 secret (also as `../../private/secret.png` or `~/...`) was read and
    served back, and the errors told "does not exist", "is a folder", "not an image" apart."""
    url, inputs, secret, _ = hostile
    refused = [str(secret), "../private/secret.png", f"{inputs}/../private/secret.png",
               f"{inputs}//..//private/secret.png", "link.png", f"{inputs}/link.png",
               "out/secret.png", "~", "~/secret.png", "~root/.bashrc", "/etc/passwd",
               "/proc/self/environ", str(secret.parent), str(secret.parent / "nope.png"),
               "nope.png", "sub", str(inputs), "a" * 5000, "a/" * 3000,
               f"{inputs}\\..\\private\\secret.png", "%2e%2e/private/secret.png",
               "file:" + str(secret)]
    errors = _errors(url, [*refused, "photo.png", str(inputs / "photo.png")])
    for given, error in zip(refused, errors, strict=False):
        assert isinstance(error, dict), (given, error)
        assert error["error"] == "InvalidImageError", (given, error)
        assert error["message"].startswith(REFUSED_PATH), (given, error)
        assert str(secret.parent) not in error["message"], (given, error)
    assert len({e["message"] for e in errors[:len(refused)]}) == 1  # one answer for all
    assert all("result" in done for done in errors[len(refused):]), errors[len(refused):]


def test_no_loopback_or_private_address_is_fetched_whatever_its_spelling(hostile):
    """Before: `http://127.0.0.1:<port>/...` reached other loopback services, and "Connection
    refused" vs "HTTP 405" told which ports listened."""
    url, _, _, (service, hits) = hostile
    port = service.rpartition(":")[2]
    closed = str(base._free_port())
    hosts = ["127.0.0.1", "localhost", "LocalHost", "0x7f.1", "127.1", "2130706433",
             "0177.0.0.1", "0x7f000001", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
             "[0:0:0:0:0:ffff:127.0.0.1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]", "0.0.0.0",
             "[::]", "[2002:7f00:1::]", "user:pw@127.0.0.1", "example.com@127.0.0.1"]
    urls = [f"http://{host}:{port}/secret.png" for host in hosts]
    urls += [f"http://127.0.0.1:{closed}/secret.png", f"HTTPS://127.0.0.1:{port}/secret.png",
             "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/a.png",
             "http://192.168.1.1/a.png", "http://100.64.0.1/a.png", "http://[fe80::1]/a.png",
             "http://[fc00::1]/a.png", f"http://127.0.0.1:{port}#@example.com/secret.png"]
    errors = _errors(url, urls)
    for given, error in zip(urls, errors, strict=True):
        assert error["error"] == "InvalidImageError", (given, error)
        assert REFUSED_URL in error["message"], (given, error)
        assert port not in error["message"] and closed not in error["message"], (given, error)
    assert hits == []  # the loopback service was never asked
    listening, shut = errors[0]["message"], errors[len(hosts)]["message"]
    assert listening == shut  # an open port and a closed one: the same answer


def test_no_other_origin_or_host_name_gets_an_answer(hostile):
    """Before: `access-control-allow-origin: *` with `allow-private-network: true`, so any
    page in the user's browser could drive the server; DNS rebinding reached it too."""
    url = hostile[0]
    evil = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Private-Network": "true"}
    for origin in ("https://evil.example", "null", "http://localhost.evil.example"):
        preflight = httpx.options(f"{url}/threads", headers={**evil, "Origin": origin},
                                  timeout=10)
        assert preflight.status_code == 403, (origin, preflight.text)
        assert "access-control-allow-origin" not in preflight.headers
        assert "access-control-allow-private-network" not in preflight.headers
        assert httpx.post(f"{url}/threads", json={}, headers={"Origin": origin},
                          timeout=10).status_code == 403
    for host in ("evil.example", "127.0.0.1.nip.io", "localhost.evil.example:2024"):
        reply = httpx.post(f"{url}/threads", json={}, headers={"Host": host}, timeout=10)
        assert reply.status_code == 421, (host, reply.text)
    allowed = httpx.options(f"{url}/threads", headers={**evil, "Origin": ALLOWED_ORIGIN},
                            timeout=10)
    assert allowed.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN
    assert httpx.get(f"{url}/ok", timeout=10).status_code == 200


def test_a_mask_review_answer_reads_no_file_outside_the_folder(hostile):
    """A review answer's mask is a reference too: the same roots, the same one answer."""
    from langgraph_sdk import get_client

    url, _, secret, _ = hostile

    async def go():
        client = get_client(url=url)
        assistant = await base._assistant(client)
        thread = (await client.threads.create())["thread_id"]
        await client.runs.wait(thread, assistant, context=RULES, input={
            "image": "photo.png", "instruction": "remove the dark square",
            "mask": base._mask_uri(), "review_mask": True})
        await client.runs.wait(thread, assistant, context=RULES,
                               command={"resume": {"mask": str(secret)}})
        state = await client.threads.get_state(thread)
        return [i["value"].get("error") for t in state["tasks"] for i in t["interrupts"]]

    asked = base._run(go())
    assert asked and asked[0].startswith(REFUSED_PATH.replace("image", "mask", 1)), asked


# -- the same rules in process ---------------------------------------------------------------


def test_the_server_reads_no_local_path_by_default(monkeypatch, tmp_path):
    """BRUSHEDIT_INPUT_ROOTS unset: the server's context reads no path at all."""
    from graphs.components import ServerContext
    from tools.errors import InvalidImageError

    for key in [k for k in os.environ if k.startswith("BRUSHEDIT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("BRUSHEDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    photo = base._photo(tmp_path)
    context = ServerContext().get()
    assert context.inputs.roots == () and not context.inputs.allow_private_urls
    for given in (str(photo), "photo.png"):
        with pytest.raises(InvalidImageError, match="not a file this server reads"):
            context.inputs.local_path(given)
    context.close()


@pytest.mark.parametrize("address", [
    "127.0.0.1", "::1", "::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a00:1",
    "2002:c0a8:101::", "169.254.169.254", "fe80::1", "fc00::1", "10.1.2.3", "172.16.0.1",
    "192.168.0.1", "100.64.0.1", "0.0.0.0", "::", "224.0.0.1", "ff02::1",
    "255.255.255.255", "198.18.0.1",
])
def test_every_non_public_address_is_refused(address):
    from graphs.input_access import _is_public

    assert not _is_public(address)


def test_public_addresses_pass():
    from graphs.input_access import _is_public

    assert all(_is_public(a) for a in ("8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8",
                                       "64:ff9b::808:808"))


def test_a_name_resolving_to_loopback_is_refused_and_the_fetch_pinned(monkeypatch):
    """A DNS name whose answer holds a loopback address is refused, even beside a public one
    (a rebinding name answers both); the connection goes to the address that was checked."""
    import socket

    from graphs.input_access import InputAccess
    from tools.errors import InvalidImageError

    answers = {"rebind.example": ["93.184.215.14", "127.0.0.1"], "v6.example": ["::1"]}

    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port)) for a in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    for host in answers:
        with pytest.raises(InvalidImageError, match="loopback, link-local or private"):
            InputAccess().fetch(f"http://{host}/a.png")
