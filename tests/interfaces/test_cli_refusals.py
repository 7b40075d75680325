"""The CLI used carelessly and with hostile intent: no lost data, no traceback, no hang.

Each test names the kind of abuse it guards against; every refusal is one `Error:` line and
exit 2, checked before any work (no session left behind, inputs untouched).
"""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from interfaces.cli import app
from interfaces.cli_errors import FAILED_EXIT, REFUSED_EXIT, USAGE_EXIT
from tests.graphs.helpers import object_mask, picture

EDIT = ("--inpainter", "opencv", "--planner", "rules")


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return Path(os.environ["BRUSHEDIT_DATA_DIR"])


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def refused(res, *words: str, status: int = REFUSED_EXIT) -> None:
    """Refused in one line, with the exit status of its kind (input refused, or setup)."""
    text = " ".join(res.output.split())
    assert res.exit_code == status, res.output
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    for word in words:
        assert word in text, res.output


def no_sessions() -> bool:
    res = run("trace", "list")
    return res.exit_code == 0 and "no sessions yet" in res.output


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


# -- data loss: chat save --------------------------------------------------------------------


def test_chat_save_refuses_the_input_the_mask_and_paths_resolving_to_them(files, tmp_path):
    image, mask = files
    before_image, before_mask = pixels(image), pixels(mask)
    (tmp_path / "link.png").symlink_to(image)
    (tmp_path / "sub").mkdir()
    dotdot = tmp_path / "sub" / ".." / "in.png"
    good = tmp_path / "saved.png"
    lines = "\n".join([
        "remove the dark square",
        f"save {image}", f"save {mask}", f"save {tmp_path / 'link.png'}", f"save {dotdot}",
        f"save {good}", "quit",
    ]) + "\n"
    res = run("chat", image, "--mask", mask, *EDIT, input=lines)
    assert res.exit_code == 0, res.output
    assert res.output.count("refusing to overwrite the input") == 4, res.output
    assert np.array_equal(pixels(image), before_image) and np.array_equal(pixels(mask), before_mask)
    assert (tmp_path / "link.png").is_symlink()
    assert good.is_file() and not np.array_equal(pixels(good), before_image)


def test_chat_save_refuses_the_data_folder(files, data_dir):
    image, mask = files
    lines = f"remove the dark square\nsave {data_dir / 'artifacts' / 'x.png'}\nquit\n"
    res = run("chat", image, "--mask", mask, *EDIT, input=lines)
    assert res.exit_code == 0 and "refusing to write the result into the data folder" in \
        " ".join(res.output.split()), res.output


# -- data loss: the artifact store --------------------------------------------------------------


def test_edit_output_inside_the_data_folder_is_refused(files, data_dir, tmp_path):
    image, mask = files
    assert run("edit", image, "remove the dark square", "-o", tmp_path / "first.png", "--mask",
               mask, *EDIT).exit_code == 0
    refused(run("edit", image, "remove it", "-o", data_dir / "x.png", "--mask", mask, *EDIT),
            "data folder")
    stored = sorted((data_dir / "artifacts").rglob("*.png"))
    assert stored
    target = stored[0]
    before = target.read_bytes()
    res = run("edit", image, "remove the dark square", "-o", target, "--mask", mask, *EDIT)
    refused(res, "data folder")
    assert target.read_bytes() == before


def test_a_damaged_artifact_counts_as_missing_and_is_rewritten_from_the_source(tmp_path):
    from graphs.artifacts import ArtifactDamagedError, ArtifactStore

    store = ArtifactStore(tmp_path / "artifacts")
    digest = store.put_image(picture(0))
    path = store.path(digest)
    picture(1).save(path)  # someone wrote another picture under this name
    with pytest.raises(ArtifactDamagedError, match=r"damaged.*counts as missing"):
        store.get_image(digest)
    assert not store.has(digest) and path.with_name(path.name + ".damaged").is_file()
    assert store.put_image(picture(0)) == digest  # the source is at hand: stored anew
    assert np.array_equal(np.asarray(store.get_image(digest)), np.asarray(picture(0)))

    path.write_bytes(b"\x89PNG truncated")  # a cut-off file is damaged too
    assert not store.has(digest)
    mask_digest = store.put_mask(object_mask())
    Image.fromarray(255 - object_mask()).save(store.path(mask_digest))
    with pytest.raises(ArtifactDamagedError):
        store.get_mask(mask_digest)


def test_an_edit_survives_a_damaged_source_artifact(files, data_dir, tmp_path):
    image, mask = files
    assert run("edit", image, "remove the dark square", "-o", tmp_path / "a.png", "--mask", mask,
               *EDIT).exit_code == 0
    for stored in (data_dir / "artifacts").rglob("*.png"):
        picture(5).save(stored)  # every stored file overwritten behind the store's back
    res = run("edit", image, "remove the dark square", "-o", tmp_path / "b.png", "--mask", mask,
              *EDIT)
    assert res.exit_code == 0, res.output
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))


# -- special files --------------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    return path


@pytest.fixture
def unix_socket(tmp_path):
    path = tmp_path / "sock.png"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    yield path
    server.close()


@pytest.fixture
def dev_zero(tmp_path):
    path = tmp_path / "zero.png"
    path.symlink_to("/dev/zero")
    return path


@pytest.mark.parametrize("kind", ["fifo", "unix_socket", "dev_zero", "urandom", "folder"])
@pytest.mark.parametrize("role", ["image", "mask"])
def test_special_files_are_refused_at_once(files, tmp_path, request, kind, role):
    image, mask = files
    special = {"urandom": Path("/dev/urandom"), "folder": tmp_path}.get(kind) or \
        request.getfixturevalue(kind)
    args = [special, "remove it", "-o", tmp_path / "o.png", "--mask", mask] if role == "image" \
        else [image, "remove it", "-o", tmp_path / "o.png", "--mask", special]
    started = time.monotonic()
    res = run("edit", *args, *EDIT)
    from tools.images import shown_name

    refused(res, shown_name(special))  # a long tmp path (xdist's) is quoted by its ends
    assert any(w in res.output for w in ("named pipe", "socket", "device", "folder")), res.output
    assert time.monotonic() - started < 10
    assert no_sessions()


def test_the_loader_refuses_special_files_without_blocking(fifo, unix_socket, dev_zero):
    from tools.errors import InvalidImageError
    from tools.images import load_mask, read_image

    for path in (fifo, unix_socket, dev_zero, Path("/dev/urandom")):
        with pytest.raises(InvalidImageError, match="not a regular file"):
            read_image(path)
        with pytest.raises(InvalidImageError, match="not a regular file"):
            load_mask(path)


def test_the_byte_cap_is_checked_while_reading(tmp_path):
    from tools.errors import InvalidImageError
    from tools.images import read_user_file

    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 5000)
    assert len(read_user_file(big, max_bytes=5000)) == 5000
    with pytest.raises(InvalidImageError, match="over the limit of 4,999 bytes"):
        read_user_file(big, max_bytes=4999)


def test_a_fifo_with_a_writer_is_still_refused(fifo):
    from tools.errors import InvalidImageError
    from tools.images import read_image

    def writer():
        with open(fifo, "wb") as handle:
            handle.write(b"\x89PNG" * 10)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    with pytest.raises(InvalidImageError, match="named pipe"):
        read_image(fifo)
    with open(fifo, "rb") as handle:  # let the writer finish
        handle.read()
    thread.join(5)


# -- numbers out of range -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--seed", str(2**64)), ("--seed", "-1"), ("--steps", "0"), ("--steps", "1000000"),
     ("--samples", "99"), ("--guidance", "1e308"), ("--guidance", "nan"), ("--guidance", "inf"),
     ("--conditioning", "-0.5"), ("--max-attempts", "11"), ("--seed", "12abc")],
)
def test_numbers_out_of_range_are_one_line(files, tmp_path, flag, value):
    image, mask = files
    res = run("edit", image, "remove the dark square", "-o", tmp_path / "o.png", "--mask", mask,
              flag, value, *EDIT)
    assert res.exit_code in (USAGE_EXIT, REFUSED_EXIT), res.output  # click's, or the facade's
    assert "Traceback" not in res.output, res.output
    assert flag in res.output or "finite" in res.output, res.output
    assert not (tmp_path / "o.png").exists()
    assert no_sessions()


def test_cli_bounds_and_help_come_from_edit_options():
    import typer.main

    from tools.types import EditOptions, option_bounds

    command = typer.main.get_command(app).get_command(None, "edit")
    fields = {"--seed": "seed", "--steps": "steps", "--samples": "samples",
              "--guidance": "guidance_scale", "--conditioning": "conditioning_scale",
              "--max-attempts": "max_attempts"}
    params = {p.opts[0]: p for p in command.params if p.opts}
    for flag, name in fields.items():
        low, high = option_bounds(name)
        assert (params[flag].type.min, params[flag].type.max) == (low, high), flag  # click's range type
        assert params[flag].help == EditOptions.model_fields[name].description
    for name, info in EditOptions.model_fields.items():
        assert info.description, f"EditOptions.{name} has no description"
    assert option_bounds("seed")[1] == 2**32 - 1


def test_a_huge_seed_is_refused_by_the_facade_too(tmp_path):
    from pydantic import ValidationError

    from tools.types import EditOptions

    with pytest.raises(ValidationError):
        EditOptions(seed=2**64)


# -- outputs where nothing can be written ---------------------------------------------------------


@pytest.mark.parametrize(
    ("out", "words"),
    [
        ("/proc/brushedit-out.png", "no file can be created"),
        ("/sys/brushedit-out.png", "no file can be created"),
        ("{image}/x.png", "is a file, not a folder"),
        ("{tmp}", "is a folder"),
        ("{tmp}/", "is a folder"),
        ("/dev/null", "not a regular file"),
        ("{tmp}/noformat", "cannot tell the image format"),
        ("{tmp}/x.psd", "cannot be written as PSD"),
        ("{tmp}/x.h5", "cannot be written as HDF5"),
        ("{tmp}/" + "n" * 300 + ".png", "too long"),
    ],
)
def test_unwritable_outputs_are_refused_before_the_edit(files, tmp_path, out, words):
    image, mask = files
    out = out.format(image=image, tmp=tmp_path)
    started = time.monotonic()
    res = run("edit", image, "remove the dark square", "-o", out, "--mask", mask, *EDIT)
    refused(res, words)
    assert no_sessions()  # nothing ran
    assert time.monotonic() - started < 10


def test_a_device_as_output_is_refused(files, tmp_path):
    image, mask = files
    link = tmp_path / "null.png"
    link.symlink_to("/dev/null")
    refused(run("edit", image, "remove it", "-o", link, "--mask", mask, *EDIT),
            "not a regular file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_read_only_folder_is_refused(files, tmp_path):
    image, mask = files
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        refused(run("edit", image, "remove it", "-o", folder / "x.png", "--mask", mask, *EDIT),
                "no file can be created")
    finally:
        folder.chmod(0o755)


def test_a_missing_folder_that_can_be_made_is_made(files, tmp_path):
    image, mask = files
    out = tmp_path / "new" / "deeper" / "x.png"
    res = run("edit", image, "remove the dark square", "-o", out, "--mask", mask, *EDIT)
    assert res.exit_code == 0 and out.is_file(), res.output


def test_other_outputs_are_checked_too(files, tmp_path, data_dir):
    image, mask = files
    assert run("edit", image, "remove the dark square", "-o", tmp_path / "a.png", "--mask", mask,
               "--session", "s1", *EDIT).exit_code == 0
    refused(run("trace", "export", "s1", "-o", "/proc/x.jsonl"), "no file can be created")
    refused(run("trace", "report", "s1", "-o", data_dir / "r.html"), "data folder")
    refused(run("trace", "report", "s1", "-o", tmp_path), "is a folder")
    refused(run("demo", "--out", image), "is not a folder")
    refused(run("demo", "--out", "/proc/demo"), "no file can be created")
    refused(run("resume", "s1", "-o", "/proc/x.png"), "no file can be created")


# -- masks of another shape ------------------------------------------------------------------------


def test_a_mask_of_another_aspect_ratio_is_refused_not_stretched(files, tmp_path):
    image, _ = files
    wide = tmp_path / "wide.png"
    Image.fromarray(np.full((32, 64), 255, np.uint8)).save(wide)
    res = run("edit", image, "remove the dark square", "-o", tmp_path / "o.png", "--mask", wide,
              *EDIT)
    refused(res, "aspect ratio differs", "never stretched")
    assert no_sessions()


def test_the_api_path_refuses_it_with_the_same_sentence_and_type(files, tmp_path):
    from interfaces.common import default_session_opener, prepare_edit
    from tests.graphs.helpers import make_components
    from tools.errors import InvalidMaskError
    from tools.images import load_mask

    wide = tmp_path / "wide.png"
    Image.fromarray(np.full((32, 64), 255, np.uint8)).save(wide)
    components = make_components(tmp_path / "api")
    photo = io.BytesIO()
    picture().save(photo, format="PNG")
    with pytest.raises(InvalidMaskError) as via_api:
        prepare_edit(components, default_session_opener, instruction="remove the dark square",
                     image=photo.getvalue(), mask=wide.read_bytes())
    components.close()
    with pytest.raises(InvalidMaskError) as via_cli:
        load_mask(wide, (64, 64), resize=True)
    assert str(via_api.value) == str(via_cli.value)


def test_a_mask_for_a_downscaled_image_is_resized_when_the_shape_agrees(tmp_path):
    from graphs.session import EditSession
    from tests.graphs.helpers import make_components

    components = make_components(tmp_path / "d", planner="rules")
    components.settings.max_image_side = 32
    big = picture().resize((128, 128))
    mask = Image.fromarray(object_mask()).resize((128, 128), Image.Resampling.NEAREST)
    path = tmp_path / "m.png"
    mask.save(path)
    result = EditSession.open(components).edit(big, "remove the dark square", mask=str(path))
    assert components.store.get_mask(result.mask).shape == (32, 32)
    wide = Image.fromarray(np.full((64, 128), 255, np.uint8))
    from tools.errors import InvalidMaskError

    with pytest.raises(InvalidMaskError, match="aspect ratio differs"):
        EditSession.open(components).edit(big, "remove the dark square", mask=np.asarray(wide))


# -- text that reaches the terminal ----------------------------------------------------------------

HOSTILE = "remove the dark square \x1b]0;pwned\x07\x1b[2J [bold red]LOUD[/] \u202eevil"
MARKUP = "remove the dark square [bold red]LOUD[/]"  # plain text, accepted (a bidi override
# is refused since issue 24: traces would show other text than was planned)


def test_control_characters_in_the_instruction_are_refused_in_one_escaped_sentence(files, tmp_path):
    image, mask = files
    res = run("edit", image, HOSTILE, "-o", tmp_path / "o.png", "--mask", mask, *EDIT)
    refused(res, "`instruction` contains the control character '\\x1b' at position 23")
    assert "\x1b" not in res.output and "\x07" not in res.output
    assert not (tmp_path / "o.png").exists() and run("trace", "list").output.count("remove") == 0


def test_trace_list_and_show_escape_control_characters_and_markup(files, tmp_path, data_dir):
    image, mask = files
    assert run("edit", image, MARKUP, "-o", tmp_path / "o.png", "--mask", mask, "--session",
               "esc", *EDIT).exit_code == 0
    # A turn written before control characters were refused (or by another writer) still
    # reaches the terminal escaped.
    from graphs.traces import TraceStore

    store = TraceStore(data_dir / "traces.sqlite")
    store.start_turn("old", 1, HOSTILE, "0" * 64)
    store.close()
    for res in (run("trace", "list"), run("trace", "show", "esc"), run("trace", "show", "old")):
        assert res.exit_code == 0, res.output
        assert "\x1b" not in res.output and "\x07" not in res.output and "\u202e" not in \
            res.output
    listing = run("trace", "list").output
    assert "\\x1b" in listing  # the stored control character, shown escaped
    assert "[bold" in listing  # markup printed as typed, not interpreted


def test_chat_escapes_user_text(files):
    image, mask = files
    lines = f"{HOSTILE}\n{MARKUP}\nhistory\nundo \x1b[31m\nquit\n"
    res = run("chat", image, "--mask", mask, *EDIT, input=lines)
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "\u202e" not in res.output
    assert "contains the control character '\\x1b'" in res.output  # refused, then goes on
    assert "[bold red]LOUD[/]" in res.output  # shown literally
    assert "cannot read" in res.output


def test_errors_echoing_user_text_are_escaped(tmp_path):
    res = run("edit", tmp_path / "no\x1b[31mpe.png", "x", "-o", tmp_path / "o.png", *EDIT)
    refused(res, "does not exist")
    assert "\x1b" not in res.output


# -- refused edits leave nothing behind --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["{tmp}/missing.png", "remove it", "-o", "{tmp}/o.png"], "does not exist"),
        (["{image}", "   ", "-o", "{tmp}/o.png", "--mask", "{mask}"], "instruction is empty"),
        (["{image}", "x" * 2001, "-o", "{tmp}/o.png", "--mask", "{mask}"], "limit is 2,000"),
        (["{image}", "remove it", "-o", "{tmp}/o.png", "--mask", "{tmp}/nomask.png"],
         "does not exist"),
        (["{image}", "remove it", "-o", "{tmp}/o.png", "--mask", "{black}"], "mask is empty"),
        (["{image}", "remove it", "-o", "{tmp}/o.png", "--mask", "{tmp}/garbage.png"],
         "not an image file"),
    ],
)
def test_a_refused_edit_leaves_no_session_behind(files, tmp_path, args, words):
    image, mask = files
    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(black)
    (tmp_path / "garbage.png").write_bytes(b"not a png at all")
    args = [a.format(image=image, mask=mask, tmp=tmp_path, black=black) for a in args]
    refused(run("edit", *args, *EDIT), words)
    assert no_sessions(), run("trace", "list").output


def test_chat_without_an_edit_records_nothing(files):
    image, _ = files
    res = run("chat", image, *EDIT, input="history\nquit\n")
    assert res.exit_code == 0 and "nothing recorded" in res.output
    assert no_sessions()


# -- sessions and ids -----------------------------------------------------------------------------


@pytest.mark.parametrize("sid", ["", "   ", "../../etc", "a b", "x" * 65, "ünï", "a\x1b[2Jb"])
def test_bad_session_ids_are_refused(files, tmp_path, sid):
    image, mask = files
    res = run("edit", image, "remove it", "-o", tmp_path / "o.png", "--mask", mask,
              "--session", sid, *EDIT)
    refused(res, "session id")
    assert "\x1b" not in res.output


def test_resume_of_an_unknown_session_says_so(tmp_path):
    refused(run("resume", "nope", "-o", tmp_path / "o.png"), "no session 'nope'")
    assert no_sessions()


def test_chat_checks_its_image_first(tmp_path):
    refused(run("chat", tmp_path / "missing.png", *EDIT, input="remove it\nquit\n"),
            "does not exist")


def test_unicode_paths_and_instructions_work(files, tmp_path):
    image, mask = files
    folder = tmp_path / "фото 写真"
    folder.mkdir()
    src = folder / "картинка.png"
    src.write_bytes(image.read_bytes())
    out = folder / "résultat ✓.png"
    res = run("edit", src, "remove the dark square 🙂", "-o", out, "--mask", mask, *EDIT)
    assert res.exit_code == 0 and out.is_file(), res.output


# -- the model server misbehaving, through the planner -----------------------------------------------


def test_auto_falls_back_to_rules_on_a_proxy_page_and_says_why(tmp_path, fake_ollama):
    from graphs.session import EditSession
    from tests.fakes.ollama_server import Reply
    from tests.graphs.helpers import make_components

    for _ in range(12):
        fake_ollama.send_next(Reply.body("<html><body>Bad gateway</body></html>", status=200))
    components = make_components(tmp_path / "d", vlm=fake_ollama.vlm(transport_retries=0),
                                 planner="auto")
    events = []
    result = EditSession.open(components).edit(picture(), "remove the dark square",
                                               mask=object_mask(), on_event=events.append)
    assert result.planner == "rules"
    fallbacks = [e for e in events if e["type"] == "fallback"]
    assert fallbacks and "HTML page" in fallbacks[0]["reason"]


def test_auto_falls_back_on_a_blind_model(tmp_path):
    from graphs.session import EditSession
    from tests.fakes.ollama_server import FakeOllama
    from tests.graphs.helpers import make_components

    with FakeOllama(models=["llama3.2:3b"], capabilities=["completion"]) as server:
        components = make_components(tmp_path / "d", vlm=server.vlm(), planner="auto")
        events = []
        result = EditSession.open(components).edit(picture(), "remove the dark square",
                                                   mask=object_mask(), on_event=events.append)
        assert server.chat_requests == []
    assert result.planner == "rules"
    assert any("no vision capability" in e.get("reason", "") for e in events
               if e["type"] == "fallback")


def test_the_cli_prints_why_it_fell_back(files, tmp_path, fake_ollama, monkeypatch):
    from tests.fakes.ollama_server import Reply

    image, mask = files
    for _ in range(12):
        fake_ollama.send_next(Reply.body('{"cut": "off'))
    monkeypatch.setenv("BRUSHEDIT_OLLAMA_HOST", fake_ollama.url)
    monkeypatch.setenv("BRUSHEDIT_OLLAMA_MODEL", fake_ollama.models[0])
    res = run("edit", image, "remove the dark square", "-o", tmp_path / "o.png", "--mask", mask,
              "--inpainter", "opencv", "--planner", "auto")
    assert res.exit_code == 0, res.output
    assert "planning with the rule parser" in res.output and "JSON" in res.output


# -- the trace store stays bounded ---------------------------------------------------------------------


def test_trace_fields_are_capped(tmp_path):
    from graphs.traces import MAX_FIELD_CHARS, TraceStore

    store = TraceStore(tmp_path / "t.sqlite")
    huge = "y" * (MAX_FIELD_CHARS * 5)
    store.record("s", "classify", outputs={"raw": huge, "many": ["z" * 100] * 5000},
                 error=huge, calls=[{"model": "m", "prompt": huge, "raw": huge, "parsed": huge}])
    (event,) = store.events("s")
    assert len(event["error"]) < MAX_FIELD_CHARS + 100 and "more characters" in event["error"]
    assert len(event["calls"][0]["raw"]) < MAX_FIELD_CHARS + 100
    assert event["outputs"]["truncated"] is True
    store.close()
    assert (tmp_path / "t.sqlite").stat().st_size < 2_000_000


# -- a broken setup is one sentence too --------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "value", "words"),
    [("BRUSHEDIT_MAX_ATTEMPTS", "99", "BRUSHEDIT_MAX_ATTEMPTS"),
     ("BRUSHEDIT_OLLAMA_TIMEOUT", "inf", "BRUSHEDIT_OLLAMA_TIMEOUT"),
     ("BRUSHEDIT_DATA_DIR", "/proc/brushedit", "cannot be used")],
)
@pytest.mark.parametrize("command", [["doctor"], ["trace", "list"], ["edit"]])
def test_bad_settings_are_one_line(files, tmp_path, monkeypatch, env, value, words, command):
    image, mask = files
    monkeypatch.setenv(env, value)
    if command == ["edit"]:
        command = ["edit", image, "remove it", "-o", tmp_path / "o.png", "--mask", mask, *EDIT]
    res = run(*command)
    if command == ["doctor"] and env == "BRUSHEDIT_DATA_DIR":
        return  # doctor does not use the data folder
    refused(res, words, status=FAILED_EXIT)  # the setup, not the request


def test_a_damaged_database_is_one_line(files, tmp_path, data_dir):
    image, mask = files
    data_dir.mkdir(parents=True)
    (data_dir / "traces.sqlite").write_bytes(b"this is not sqlite" * 100)
    refused(run("trace", "list"), "not a SQLite database", status=FAILED_EXIT)
    (data_dir / "traces.sqlite").unlink()
    (data_dir / "sessions.sqlite").write_bytes(b"this is not sqlite" * 100)
    refused(run("edit", image, "remove it", "-o", tmp_path / "o.png", "--mask", mask, *EDIT),
            "session database", status=FAILED_EXIT)


def test_chat_survives_bytes_that_are_not_text(files):
    image, mask = files
    res = CliRunner().invoke(app, ["chat", str(image), "--mask", str(mask), *EDIT],
                             input=b"remove the dark square \xff\xfe\nremove the dark square\n"
                                   b"history\nquit\n")
    assert res.exit_code == 0, res.output
    assert "is not valid UTF-8 (byte 0xFF" in res.output  # refused, not stored as Latin-1
    assert "1. remove the dark square" in res.output  # and the chat goes on


def test_a_sqlite_database_elsewhere_is_protected_too(files, tmp_path, monkeypatch):
    image, mask = files
    database = tmp_path / "elsewhere.png"  # an odd name, but it is the session database
    monkeypatch.setenv("BRUSHEDIT_DATABASE_URL", f"sqlite:///{database}")
    assert run("edit", image, "remove the dark square", "-o", tmp_path / "a.png", "--mask", mask,
               *EDIT).exit_code == 0
    before = database.read_bytes()
    refused(run("edit", image, "remove it", "-o", database, "--mask", mask, *EDIT),
            "refusing to overwrite")
    assert database.read_bytes()[:16] == before[:16] == b"SQLite format 3\x00"


def test_a_hard_link_to_the_input_is_refused_as_output(files, tmp_path):
    image, mask = files
    link = tmp_path / "hard.png"
    os.link(image, link)
    refused(run("edit", image, "remove it", "-o", link, "--mask", mask, *EDIT),
            "refusing to overwrite the input")


def test_the_servers_treat_a_damaged_artifact_as_missing(tmp_path):
    from interfaces.common import NotFoundError, artifact_path
    from tests.graphs.helpers import make_components

    components = make_components(tmp_path / "d")
    digest = components.store.put_image(picture(0))
    assert artifact_path(components, digest).is_file()
    picture(3).save(components.store.path(digest))
    with pytest.raises(NotFoundError):
        artifact_path(components, digest)


def test_continuing_an_unknown_session_says_so(tmp_path):
    refused(run("edit", "-", "remove it", "-o", tmp_path / "o.png", "--session", "ghost", *EDIT),
            "no session 'ghost'")


def test_doctor_prints_a_servers_answer_as_text(fake_ollama, monkeypatch):
    from tests.fakes.ollama_server import Reply

    fake_ollama.send_next(Reply.body("<html>[bold red]proxy login[/] \x1b[2J</html>"),
                          path="/api/tags")
    monkeypatch.setenv("BRUSHEDIT_OLLAMA_HOST", fake_ollama.url)
    res = run("doctor")
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "HTML page" in " ".join(res.output.split())


@pytest.mark.parametrize("host", [":::", "http://exa mple", "http://127.0.0.1:99999", "ftp://x"])
def test_a_bad_ollama_address_is_one_line(files, tmp_path, monkeypatch, host):
    image, mask = files
    monkeypatch.setenv("BRUSHEDIT_OLLAMA_HOST", host)
    refused(run("edit", image, "remove it", "-o", tmp_path / "o.png", "--mask", mask,
                "--inpainter", "opencv"), "BRUSHEDIT_OLLAMA_HOST", status=FAILED_EXIT)
    assert "BRUSHEDIT_BRUSHEDIT" not in run("doctor").output


def test_the_client_refuses_a_bad_address_as_a_vlm_error():
    from agents.classify import Classification
    from agents.errors import VLMRequestError
    from agents.ollama_vlm import OllamaVLM

    with pytest.raises(VLMRequestError, match="not a valid URL"):
        OllamaVLM(host="http://127.0.0.1:99999").ask(system="s", user="u", schema=Classification)
    assert not OllamaVLM(host="http://127.0.0.1:99999").check().ok


def test_review_asks_again_for_a_replacement_mask_it_cannot_use(files, tmp_path):
    image, mask = files
    res = run("edit", image, "remove the dark square", "-o", tmp_path / "o.png", "--mask", mask,
              "--review-mask", *EDIT, input=f"{tmp_path / 'nope.png'}\n/dev/zero\n{mask}\n")
    assert res.exit_code == 0, res.output
    squeezed = "".join(res.output.split())  # Rich folds long paths at the console width
    from tools.images import shown_name

    missing = "".join(shown_name(tmp_path / "nope.png").split())  # a long path by its ends
    assert f"{missing}doesnotexist" in squeezed and "isadevice" in squeezed, res.output
    assert (tmp_path / "o.png").is_file()

