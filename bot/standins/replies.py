"""Writing a stand-in's reply on its stdlib HTTP handler: one place for both servers."""

from __future__ import annotations

from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler


def answer(
    handler: BaseHTTPRequestHandler,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    drop: bool = False,
) -> None:
    """Send one reply on the (keep-alive) connection, or with `drop` close it unanswered,
    as a crashed or cut-off server would."""
    if drop:
        handler.close_connection = True
        return
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
