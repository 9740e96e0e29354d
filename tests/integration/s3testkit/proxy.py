"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1 in front of an S3 endpoint.

Each ``Fault`` applies to the next ``count`` requests it matches: answer with an S3 error
status (503 SlowDown, 500 InternalError, 403 AccessDenied, ...), reset the connection (RST),
stall without answering (the client hits its read timeout), or forward but flip a byte of
the response body (a corrupt download). Everything else is forwarded unchanged.
Bounded: stalls end at ``stall_s`` or when the proxy stops; upstream calls time out.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}


@dataclass
class Fault:
    action: str  # "status" | "reset" | "stall" | "tamper"
    count: int = 1
    match: Callable[[str, str], bool] = field(default=lambda method, path: True)
    status: int = 503
    code: str = "SlowDown"
    stall_s: float = 30.0


def is_upload_part(method: str, path: str) -> bool:
    return method == "PUT" and "partNumber=" in path


def is_get_object(method: str, path: str) -> bool:
    return method == "GET" and "?" not in path and path.count("/") >= 2


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        u = urlparse(upstream)
        self.upstream = (u.hostname or "127.0.0.1", u.port or 80)
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, str]] = []  # (method, path, action)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.stalled = threading.Event()
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)
        self.thread.start()

    def add(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.log.clear()

    def actions(self, action: str) -> list[tuple[str, str, str]]:
        with self.lock:
            return [entry for entry in self.log if entry[2] == action]

    def _choose(self, method: str, path: str) -> Fault | None:
        with self.lock:
            chosen = None
            for f in self.faults:
                if f.count > 0 and f.match(method, path):
                    f.count -= 1
                    chosen = f
                    break
            self.log.append((method, path, chosen.action if chosen else "forward"))
            return chosen

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: FaultProxy

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        return

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = bytearray()
            while True:
                line = self.rfile.readline()
                raw += line
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, then the empty line
                        t = self.rfile.readline()
                        raw += t
                        if t in (b"\r\n", b"\n", b""):
                            return bytes(raw)
                raw += self.rfile.read(size + 2)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _handle(self) -> None:
        body = self._body()
        fault = self.owner._choose(self.command, self.path)
        if fault is None or fault.action == "tamper":
            self._forward(body, tamper=fault is not None)
        elif fault.action == "status":
            xml = (
                f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{fault.code}</Code>"
                f"<Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>"
            ).encode()
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(xml)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(xml)
        elif fault.action == "reset":
            self._reset()
        elif fault.action == "stall":
            self.owner.stalled.set()
            self.owner.stopping.wait(fault.stall_s)
            self._reset()
        else:
            raise ValueError(f"unknown fault action {fault.action!r}")

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _forward(self, body: bytes, *, tamper: bool) -> None:
        conn = http.client.HTTPConnection(*self.owner.upstream, timeout=120)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if (
                    name.lower() not in HOP_BY_HOP - {"transfer-encoding", "content-length"}
                    and name.lower() != "expect"
                ):
                    conn.putheader(name, value)
            conn.endheaders()
            if body:
                conn.send(body)
            resp = conn.getresponse()
            data = resp.read()
            headers = resp.getheaders()
        finally:
            conn.close()
        if tamper and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self.send_response_only(resp.status, resp.reason)
        length = None
        for name, value in headers:
            if name.lower() == "content-length":
                length = value
            elif name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", length if self.command == "HEAD" and length else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle
