"""The usage-API client: the first stage of the pipeline (poll -> store -> ...).

Policy lives here (auth header, retries with backoff, validation); I/O is the injected
`httpx.Client`. Every httpx error and every untrustworthy body becomes a `SourceError`
(or its `SchemaDrift` subclass) at this boundary, so no foreign exception leaks out.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import fastjsonschema
import httpx

from bot.api_schema import EVENTS_PATH, EVENTS_SCHEMA, SUMMARY_PATH, SUMMARY_SCHEMA
from bot.backoff import DOUBLE_JITTER, USAGE_API, Backoff
from bot.errors import SchemaDrift, SourceError
from bot.models import Event, EventsPage, Summary

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024  # a 100-event page is ~60 KB; 90 summary days ~100 KB
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=10.0, pool=5.0)

_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
# Compiled once: validating a 100-event page takes ~0.3 ms instead of ~40 ms.
_Validator = Callable[[Any], Any]
_SUMMARY_VALIDATOR: _Validator = fastjsonschema.compile(SUMMARY_SCHEMA)
_EVENTS_VALIDATOR: _Validator = fastjsonschema.compile(EVENTS_SCHEMA)


def make_http_client(base_url: str, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> httpx.Client:
    """The production transport: explicit timeouts, no redirects to other hosts."""
    return httpx.Client(base_url=base_url, timeout=timeout, follow_redirects=False)


class UsageClient:
    """Typed access to GET /v1/usage/summary and /v1/usage/events with retries.

    Args:
        http: an httpx.Client whose base_url points at the usage API.
        api_key: sent as X-Api-Key; never logged.
        max_attempts: tries per call for transient failures (429, 5xx, timeouts).
        backoff_base, backoff_cap: the API's documented backoff, in seconds: the n-th
            wait is drawn from [c, 2c] with c = min(cap, base * 2**(n-1)); the defaults
            give 1-2 s, 2-4 s, 4-8 s, then 8-16 s. A Retry-After is honoured as sent, up
            to 2 * cap (16 s).
        sleep: how to wait between tries; returning True means "stop now" (a
            `threading.Event.wait` does that on shutdown), which ends the retries.
        rand: uniform [0, 1) source for jitter.
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        api_key: str | None,
        max_attempts: int = 4,
        backoff_base: float = USAGE_API.base,
        backoff_cap: float = USAGE_API.cap,
        sleep: Callable[[float], object] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._max_attempts = max_attempts
        # The usage API's advice (usage-api.md 1): exponential backoff with jitter of about
        # 1-2 s, 2-4 s, 4-8 s, capped at 8-16 s: a 429 burst is never answered faster than
        # about one request a second.
        self._backoff = Backoff(
            backoff_base, backoff_cap, jitter=DOUBLE_JITTER, max_retry_after=2 * backoff_cap
        )
        self._sleep = sleep
        self._rand = rand

    def summary(self, days: int) -> Summary:
        """Daily aggregates for the last `days` days (1..90), validated."""
        if not 1 <= days <= 90:
            raise ValueError(f"days must be 1..90, got {days}")
        body, request_id = self._get(SUMMARY_PATH, {"days": days}, _SUMMARY_VALIDATOR)
        try:
            return Summary.from_api(body, request_id=request_id)
        except (ValueError, OverflowError) as exc:  # e.g. a date like 2026-13-45
            raise SchemaDrift(str(exc), endpoint=SUMMARY_PATH, request_id=request_id) from exc

    def events(self, limit: int) -> EventsPage:
        """The newest `limit` (1..100) events, newest first, validated."""
        if not 1 <= limit <= 100:
            raise ValueError(f"limit must be 1..100, got {limit}")
        body, request_id = self._get(EVENTS_PATH, {"limit": limit}, _EVENTS_VALIDATOR)
        items = []
        for index, item in enumerate(body["items"]):
            try:
                items.append(Event.from_api(item))
            except (ValueError, OverflowError) as exc:  # a created_at the pattern let by
                raise SchemaDrift(
                    str(exc),
                    endpoint=EVENTS_PATH,
                    path=f"$.items[{index}].created_at",
                    request_id=request_id,
                ) from exc
        return EventsPage(limit=limit, items=tuple(items), request_id=request_id)

    # -- one call with retries ------------------------------------------------

    def _get(
        self, path: str, params: Mapping[str, int], validator: _Validator
    ) -> tuple[dict[str, Any], str | None]:
        attempt = 1
        while True:
            try:
                return self._get_once(path, params, validator)
            except SourceError as exc:
                if not exc.transient or attempt >= self._max_attempts:
                    raise
                wait = self._backoff.delay(attempt, self._rand, retry_after=exc.retry_after)
                log.warning(
                    "retrying %s in %.2fs (attempt %d/%d): %s",
                    path,
                    wait,
                    attempt + 1,
                    self._max_attempts,
                    exc,
                )
                if self._sleep(wait) is True:
                    raise  # shutting down: no more tries
                attempt += 1

    def _get_once(
        self, path: str, params: Mapping[str, int], validator: _Validator
    ) -> tuple[dict[str, Any], str | None]:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["X-Api-Key"] = self._api_key
        try:
            with self._http.stream("GET", path, params=dict(params), headers=headers) as resp:
                raw = _read_capped(resp, path)
        except httpx.TimeoutException as exc:
            raise SourceError(
                f"timed out ({type(exc).__name__})", endpoint=path, code="timeout", transient=True
            ) from exc
        except httpx.HTTPError as exc:
            raise SourceError(
                f"connection failed ({type(exc).__name__})",
                endpoint=path,
                code="connection_error",
                transient=True,
            ) from exc
        request_id = resp.headers.get("x-request-id")
        if not 200 <= resp.status_code < 300:  # redirects are not followed: not an answer
            raise _error_from_response(resp, raw, path, request_id)
        body = _decode_json(raw, path, resp.status_code, request_id)
        try:
            validator(body)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise SchemaDrift(
                exc.message.removeprefix(exc.name or "").strip()[:300],
                endpoint=path,
                status=resp.status_code,
                path=_json_path(exc.path or []),
                request_id=request_id,
            ) from exc
        return body, request_id


def _json_path(parts: list[str]) -> str:
    """['data', 'items', '7', 'credits_used'] -> '$.items[7].credits_used'."""
    text = "$"
    for part in parts[1:]:
        text += f"[{part}]" if part.isdigit() else f".{part}"
    return text


def _read_capped(resp: httpx.Response, path: str) -> bytes:
    """Read the body but refuse to buffer more than MAX_BODY_BYTES of it."""
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise SchemaDrift(
                f"body larger than {MAX_BODY_BYTES} bytes",
                endpoint=path,
                status=resp.status_code,
                request_id=resp.headers.get("x-request-id"),
            )
        chunks.append(chunk)
    return b"".join(chunks)


def loads_strict(raw: bytes | str) -> Any:
    """json.loads that refuses NaN, Infinity and floats that overflow, as JSON does.

    Raises ValueError, or RecursionError for nesting too deep to decode.
    """
    return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)


def _decode_json(raw: bytes, path: str, status: int, request_id: str | None) -> Any:
    try:
        return loads_strict(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise SchemaDrift(
            f"body is not JSON ({len(raw)} bytes)",
            endpoint=path,
            status=status,
            request_id=request_id,
        ) from exc


def _no_constant(name: str) -> float:
    """NaN and Infinity are not JSON (Python's decoder accepts them)."""
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    """A float literal, refused when it overflows (1e400 would become inf)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def _error_from_response(
    resp: httpx.Response, raw: bytes, path: str, request_id: str | None
) -> SourceError:
    """Map a non-2xx answer, trusting the status code and the envelope if it parses."""
    code: str | None = None
    message = resp.reason_phrase or "error"
    try:
        envelope = json.loads(raw).get("error")
    except (ValueError, AttributeError, RecursionError):
        envelope = None
    if isinstance(envelope, dict):
        code = envelope.get("code") if isinstance(envelope.get("code"), str) else None
        if isinstance(envelope.get("message"), str):
            message = envelope["message"][:300]
        if isinstance(envelope.get("request_id"), str):
            request_id = envelope["request_id"]
    return SourceError(
        message,
        endpoint=path,
        status=resp.status_code,
        code=code,
        request_id=request_id,
        transient=resp.status_code in _TRANSIENT_STATUSES,
        retry_after=_retry_after(resp.headers.get("retry-after")),
    )


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())
