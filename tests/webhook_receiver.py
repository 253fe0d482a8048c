"""A webhook receiver for tests and the bench: a real HTTP server on 127.0.0.1 in a thread, keeping every message
it gets (headers, the body's exact bytes) and whether each secret it is told verifies it with the
``standardwebhooks`` library. Per path it can answer 500 to the first N attempts of each event, a fixed status,
or slowly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Message:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    verified: dict[str, bool]  # secret -> whether it verifies
    at: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id", "")


class Receiver:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.secrets: list[str] = []
        self.fail_first: dict[str, int] = {}  # path -> attempts of each event answered 500 first
        self.status: dict[str, int] = {}  # path -> status always answered
        self.delay: dict[str, float] = {}  # path -> seconds before answering
        self._seen: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = owner._answer(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _answer(self, path: str, raw: dict[str, str], body: bytes) -> int:
        headers = {k.lower(): v for k, v in raw.items()}
        delay = self.delay.get(path, 0.0)
        if delay:
            time.sleep(delay)
        verified = {}
        for secret in list(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
                verified[secret] = True
            except WebhookVerificationError:
                verified[secret] = False
        with self._lock:
            key = (path, headers.get("webhook-id", ""))
            self._seen[key] = self._seen.get(key, 0) + 1
            if path in self.status:
                status = self.status[path]
            elif self._seen[key] <= self.fail_first.get(path, 0):
                status = 500
            else:
                status = 204
            self.messages.append(Message(path, headers, body, status, verified))
        return status

    def got(self, path: str | None = None) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if path is None or m.path == path]

    def wait(self, what: Callable[[], Any], *, timeout: float = 30.0, about: str = "") -> Any:
        """``what()`` once it is truthy; AssertionError after ``timeout`` seconds, with what came meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            time.sleep(0.05)
        seen = [(m.path, m.id, m.status) for m in self.got()][-20:]
        raise AssertionError(f"waited {timeout} s for {about or 'a message'}; the receiver got {seen}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
