"""An Ollama server that fails the way real ones do, on a raw socket (so a body can be cut).

    with FaultyModelServer() as server:          # http://127.0.0.1:<port>
        server.mode = "http500"                  # every /api/chat answers HTTP 500
        ...

`/api/show` and `/api/tags` answer as Ollama does for a vision model; `/api/chat` answers by
`mode`: `http500`, `empty` (200 with no body), `garbage` (200, JSON that is never the
schema's), `cut` (200 whose body stops half-way, then the connection closes) or `hang`
(nothing, for `hang_s` seconds).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

from agents.families import DEFAULT_OLLAMA_MODEL

MODEL = DEFAULT_OLLAMA_MODEL  # the model a default OllamaVLM asks for
MODES = ("http500", "empty", "garbage", "cut", "hang")


class FaultyModelServer:
    def __init__(self, mode: str = "http500", hang_s: float = 30.0) -> None:
        self.mode = mode
        self.hang_s = hang_s
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.chats = 0

    def __enter__(self) -> FaultyModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                path = self._read_request(conn)
                if path.startswith("/api/chat"):
                    self.chats += 1
                    self._chat(conn)
                elif path.startswith("/api/show"):
                    _send(conn, 200, {"capabilities": ["completion", "vision"],
                                      "details": {"family": "qwen25vl"}, "model_info": {}})
                elif path.startswith("/api/tags"):
                    _send(conn, 200, {"models": [{"name": MODEL, "model": MODEL}]})
                elif path.startswith("/api/version"):
                    _send(conn, 200, {"version": "0.6.3"})
                else:
                    _send(conn, 404, {"error": "not found"})
            except OSError:
                pass

    def _chat(self, conn: socket.socket) -> None:
        if self.mode == "http500":
            _send(conn, 500, {"error": "llama runner process has terminated"})
        elif self.mode == "empty":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        elif self.mode == "garbage":
            _send(conn, 200, {"model": MODEL, "done": True, "message": {
                "role": "assistant", "content": "{\"nothing\": \"useful\"}"}})
        elif self.mode == "cut":
            body = json.dumps({"model": MODEL, "message": {"role": "assistant",
                                                           "content": "x" * 200}}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:40])
            conn.shutdown(socket.SHUT_RDWR)
        elif self.mode == "hang":
            time.sleep(self.hang_s)

    @staticmethod
    def _read_request(conn: socket.socket) -> str:
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return ""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                       if line.lower().startswith("content-length:")), 0)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return lines[0].split(" ")[1] if " " in lines[0] else ""


def _send(conn: socket.socket, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}.get(status, "Error")
    conn.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
