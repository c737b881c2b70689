"""A local stand-in of Slack's Socket Mode, for the tests: real WebSocket over TCP on loopback.

Slack's side of Socket Mode is two pieces, and so is this one:

* ``apps.connections.open`` (a Web API method, called with the app-level ``xapp-`` token)
  hands out a one-time WebSocket URL. `SlackStandIn` serves the method; give it this
  stand-in with ``SocketModeStandIn(web=slack)`` and it answers with `new_url`.
* The WebSocket itself: the RFC 6455 handshake, a ``hello`` message, then envelopes
  (``slash_commands``, ``interactive``, ...) that the app acknowledges by sending back
  ``{"envelope_id": ..., "payload": ...}``. `request` sends one and waits for the ack.

The handshake and framing are written here with the stdlib (about a hundred lines): only
what a Socket Mode client needs. Frames from the client must be masked and whole (no
fragmentation); ours are unmasked. A ping is answered with a pong carrying its payload, a
close frame with a close frame.

Faults, on the current connection: `drop` closes the TCP connection without a close frame
(a dyno restart on Slack's side, a NAT that forgot us); `go_silent` keeps it open but
answers nothing, pings included (a half-open connection); `ask_to_reconnect` sends the
``disconnect`` message Slack sends before it rotates a connection.

Choices of the stand-in, not verified against Slack: a ticket is good for one connection,
an unknown or used ticket gets ``HTTP 403`` and no WebSocket.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import socket
import struct
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from bot.standins.slack import SlackStandIn

__all__ = ["SocketModeStandIn"]

WEBSOCKET_GUID: Final = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
MAX_FRAME: Final = 1 << 20  # an ack is a few KB; anything bigger is a client bug
MAX_HANDSHAKE: Final = 8192
APP_ID: Final = "A0APP"


class _Link:
    """One accepted WebSocket connection."""

    def __init__(self, sock: socket.socket, number: int) -> None:
        self.sock = sock
        self.number = number
        self.silent = False
        self.closed = threading.Event()
        self._send_lock = threading.Lock()

    def send(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(_frame(opcode, payload))

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(TEXT, json.dumps(message).encode())

    def cut(self) -> None:
        """Close the TCP connection at once, without a close frame."""
        self.closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes our reader blocked in recv()
        except OSError:
            pass  # the client closed it first
        self.sock.close()


class SocketModeStandIn:
    """Slack's Socket Mode end on loopback; see the module docstring."""

    def __init__(self, web: SlackStandIn | None = None, *, host: str = "127.0.0.1") -> None:
        self._web = web
        self._host = host
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._tickets: set[str] = set()
        self._links: list[_Link] = []
        self._threads: list[threading.Thread] = []
        self._acks: dict[str, dict[str, Any]] = {}
        self._listener: socket.socket | None = None
        self.urls_issued = 0  # apps.connections.open calls answered
        self.received: list[dict[str, Any]] = []  # every text message from the client

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> SocketModeStandIn:
        listener = socket.create_server((self._host, 0))
        listener.settimeout(0.05)  # accept() wakes up to notice close()
        self._listener = listener
        self._spawn(self._accept_loop, "socket-standin-accept")
        if self._web is not None:
            self._web.serve_socket_mode(self.new_url)
        return self

    def close(self) -> None:
        if self._web is not None:
            self._web.serve_socket_mode(None)
        self._stop.set()  # from here on nothing new is started or registered
        with self._lock:
            links, threads = list(self._links), list(self._threads)
            self._lock.notify_all()
        for link in links:
            link.cut()
        for thread in threads:
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> SocketModeStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- what Slack's Web API side calls -------------------------------------------------

    def new_url(self) -> str:
        """A one-time WebSocket URL, as apps.connections.open returns it."""
        if self._listener is None:
            raise RuntimeError("SocketModeStandIn is not started")
        ticket = uuid.uuid4().hex
        with self._lock:
            self._tickets.add(ticket)
            self.urls_issued += 1
        port = self._listener.getsockname()[1]
        return f"ws://{self._host}:{port}/link/?ticket={ticket}&app_id={APP_ID}"

    # --- what a test does --------------------------------------------------------------

    @property
    def connections(self) -> int:
        """WebSocket connections accepted so far (reconnects included)."""
        with self._lock:
            return len(self._links)

    def wait_for_connections(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until `count` connections were accepted and the newest is open."""
        with self._lock:
            return self._lock.wait_for(
                lambda: len(self._links) >= count and not self._links[-1].closed.is_set(),
                timeout,
            )

    def request(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = False,
        timeout: float = 10.0,
    ) -> dict[str, Any] | None:
        """Send an envelope on the newest connection and wait for its ack (None: no ack
        within `timeout`). OSError when that connection is closed already."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        self._newest().send_json(envelope)
        with self._lock:
            self._lock.wait_for(lambda: envelope_id in self._acks, timeout)
            return self._acks.pop(envelope_id, None)

    def drop(self) -> None:
        """Close the newest connection's TCP socket without a WebSocket close frame."""
        self._newest().cut()

    def go_silent(self) -> None:
        """The newest connection stays open but answers nothing from now on."""
        self._newest().silent = True

    def ask_to_reconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's `disconnect` message: it is about to close this connection."""
        self._newest().send_json({"type": "disconnect", "reason": reason})

    # --- serving -----------------------------------------------------------------------

    def _newest(self) -> _Link:
        with self._lock:
            if not self._links:
                raise RuntimeError("no client has connected")
            return self._links[-1]

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> bool:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            if self._stop.is_set():
                return False
            thread.start()
            self._threads.append(thread)
        return True

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed under us
            sock.settimeout(None)
            if not self._spawn(self._serve, f"socket-standin-link-{len(self._threads)}", sock):
                sock.close()

    def _serve(self, sock: socket.socket) -> None:
        try:
            reader = sock.makefile("rb")
        except OSError:
            sock.close()
            return
        with reader:
            if not self._handshake(sock, reader):
                sock.close()
                return
            with self._lock:
                if self._stop.is_set():
                    sock.close()
                    return
                link = _Link(sock, len(self._links) + 1)
                self._links.append(link)
                self._lock.notify_all()
            try:
                link.send_json(_hello(link.number))
                self._read_frames(link, reader)
            except (OSError, EOFError, ValueError):
                pass  # dropped, cut, or a malformed frame: this connection is over
            finally:
                link.cut()
                with self._lock:
                    self._lock.notify_all()

    def _handshake(self, sock: socket.socket, reader: Any) -> bool:
        """Answer the client's upgrade request (RFC 6455, section 4.2)."""
        try:
            head = _read_head(reader)
        except (OSError, EOFError, ValueError):
            return False
        request_line, *lines = head.split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, sep, value in (line.partition(":") for line in lines)
            if sep
        }
        ticket = parse_qs(urlsplit(request_line.split(" ")[1]).query).get("ticket", [""])[0]
        with self._lock:
            known = ticket in self._tickets
            self._tickets.discard(ticket)
        key = headers.get("sec-websocket-key")
        if not known or not key or headers.get("upgrade", "").lower() != "websocket":
            sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return False
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest())
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        return True

    def _read_frames(self, link: _Link, reader: Any) -> None:
        while not link.closed.is_set():
            opcode, payload = _read_frame(reader)
            if link.silent:
                continue  # read on, so the client's sends never block, but answer nothing
            if opcode == PING:
                link.send(PONG, payload)
            elif opcode == CLOSE:
                link.send(CLOSE, payload[:2])
                return
            elif opcode == TEXT:
                self._on_text(payload)

    def _on_text(self, payload: bytes) -> None:
        message = json.loads(payload)
        with self._lock:
            self.received.append(message)
            if isinstance(message, dict) and "envelope_id" in message:
                self._acks[str(message["envelope_id"])] = message
            self._lock.notify_all()


def _hello(number: int) -> dict[str, Any]:
    return {
        "type": "hello",
        "num_connections": 1,
        "debug_info": {"host": "socket-standin", "connection": number},
        "connection_info": {"app_id": APP_ID},
    }


def _read_head(reader: Any) -> str:
    """The HTTP request head up to its blank line."""
    lines: list[bytes] = []
    size = 0
    while True:
        line = reader.readline(MAX_HANDSHAKE)
        if not line:
            raise EOFError("closed during the handshake")
        size += len(line)
        if size > MAX_HANDSHAKE:
            raise ValueError("handshake too long")
        if line in (b"\r\n", b"\n"):
            return b"".join(lines).decode("latin-1").rstrip("\r\n")
        lines.append(line)


def _read_exactly(reader: Any, count: int) -> bytes:
    data: bytes = reader.read(count)
    if len(data) < count:
        raise EOFError("connection closed mid-frame")
    return data


def _read_frame(reader: Any) -> tuple[int, bytes]:
    """One client frame (RFC 6455, section 5.2): whole, masked."""
    first, second = _read_exactly(reader, 2)
    if not first & 0x80:
        raise ValueError("fragmented frames are not supported")
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _read_exactly(reader, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _read_exactly(reader, 8))
    if length > MAX_FRAME:
        raise ValueError("frame too large")
    if not second & 0x80:
        raise ValueError("client frames must be masked")
    mask = _read_exactly(reader, 4)
    data = _read_exactly(reader, length)
    return first & 0x0F, bytes(b ^ m for b, m in zip(data, itertools.cycle(mask)))


def _frame(opcode: int, payload: bytes) -> bytes:
    """A whole, unmasked server frame."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return head + payload
