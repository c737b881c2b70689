"""Enforcement hooks: budget threshold events POSTed to the operator's backend.

Each body is fixed when the event is decided and stored with its idempotency key;
every try signs it afresh (HMAC-SHA256 over "<timestamp>.<body>", sent as
`X-UsageBot-Signature: sha256=<hex>` with `X-UsageBot-Timestamp`, the scheme of the
API's own webhooks) and it is retried with backoff until a 2xx. A receiver verifies
with `verify()` and deduplicates on `Idempotency-Key`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import urlsplit

import httpx

from bot.backoff import Backoff
from bot.messages import notices
from bot.store import Store

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-UsageBot-Signature"
TIMESTAMP_HEADER = "X-UsageBot-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
TOLERANCE = 300  # seconds a receiver should accept a timestamp either side of its clock
# Between tries of one hook: doubling from 15 s to 15 min, give or take 20 %.
BACKOFF = Backoff(base=15.0, cap=900.0, jitter=(0.8, 1.2))
TELL_AFTER = 3  # failed tries before ops hear that a hook is failing


def make_client() -> httpx.Client:
    """The HTTP client that carries the hooks: explicit timeouts, no retries of its own
    (a failed try is recorded and retried with backoff by `send_hooks`)."""
    return httpx.Client(timeout=httpx.Timeout(10.0))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: float) -> bool:
    """What a receiver checks: a fresh timestamp and a matching signature (constant time)."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if abs(now - int(timestamp)) > TOLERANCE:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def send_hooks(
    store: Store,
    client: httpx.Client,
    urls: Mapping[str, str],
    secret: str | None,
    now: datetime,
    wall: Callable[[], float],
    rand: Callable[[], float] = random.random,
) -> int:
    """Try every due hook once; return how many were delivered.

    A failing hook waits its own backoff and never holds up the others: each has its
    idempotency key, so order matters less than getting through.
    """
    delivered = 0
    for hook in store.hooks(due=wall()):
        url = urls.get(hook.budget)
        status: int | None = None
        error: str | None
        if url is None or secret is None:
            error = "no hook URL or BUDGET_WEBHOOK_SECRET configured for this budget"
        else:
            status, error = _post(client, url, secret, hook.key, hook.body, wall)
        attempts = hook.attempts + 1
        retry_at = None if error is None else wall() + BACKOFF.delay(attempts, rand)
        store.hook_tried(hook.id, status=status, error=error, retry_at=retry_at, now=now)
        where = f"budget {hook.budget} hook ({_host(url)})"
        if error is None:
            delivered += 1
            log.info("%s delivered %s after %d tries", where, hook.key, attempts)
        else:
            log.warning("%s failed (try %d): %s; retrying later", where, attempts, error)
        if error is None or attempts >= TELL_AFTER:
            store.episode(
                f"hook {hook.budget}",
                error is not None,
                notices.hook_failing(hook.budget, error)
                if error
                else notices.hook_delivers(hook.budget),
                now,
            )
    return delivered


def _post(
    client: httpx.Client, url: str, secret: str, key: str, body: str, wall: Callable[[], float]
) -> tuple[int | None, str | None]:
    """(HTTP status, error or None when delivered). Errors never carry the URL: it may
    hold a token."""
    timestamp = int(wall())
    raw = body.encode()
    headers = {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: key,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, raw),
    }
    try:
        response = client.post(url, content=raw, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: no answer"
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}"


def _host(url: str | None) -> str:
    if not url:
        return "no URL"
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"
