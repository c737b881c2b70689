"""Logging: one JSON object per line with LOG_FORMAT=json, and secrets scrubbed in any format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import configure


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_json_format_is_one_object_per_line_with_the_fields_a_poll_line_carries() -> None:
    out = io.StringIO()
    configure("INFO", "json", secrets=["sk_live_abcdef123456"], stream=out)
    log = logging.getLogger("bot.worker")
    log.info("poll %s ok request_id=%s", "/v1/usage/events", "req_1", extra={"items": 3})
    log.warning("key sk_live_abcdef123456 refused\nsecond line")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # a newline inside a message stays inside its JSON string
    first, second = map(json.loads, lines)
    assert first["message"] == "poll /v1/usage/events ok request_id=req_1"
    assert (first["level"], first["logger"], first["items"]) == ("INFO", "bot.worker", 3)
    assert "sk_live_abcdef123456" not in second["message"] and "[redacted]" in second["message"]


@pytest.mark.usefixtures("restore_logging")
def test_secrets_are_scrubbed_from_text_logs_and_tracebacks() -> None:
    out = io.StringIO()
    configure("DEBUG", "text", secrets=["xoxb-secret-token-value"], stream=out)
    log = logging.getLogger("slack_sdk.web")
    try:
        raise RuntimeError("auth with xoxb-secret-token-value failed")
    except RuntimeError:
        log.exception("call failed for %s", "xoxb-secret-token-value")
    text = out.getvalue()
    assert "xoxb-secret-token-value" not in text and text.count("[redacted]") >= 2
    assert "RuntimeError" in text  # the traceback itself is kept
