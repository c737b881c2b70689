"""The usage API's endpoints and JSON Schemas for their 2xx bodies (usage-api.md
section 3, our assumption).

`source` validates every response against these before anything is stored. Unknown
extra fields are allowed so additive API changes do not break the bot.
"""

from __future__ import annotations

from typing import Any

SUMMARY_PATH = "/v1/usage/summary"
EVENTS_PATH = "/v1/usage/events"

# An upper bound on every number: SQLite's INTEGER holds no more, and float() of a
# larger JSON integer (e.g. 1 followed by 400 zeros) would raise OverflowError.
_MAX = 2**63 - 1
_COUNT = {"type": "integer", "minimum": 0, "maximum": _MAX}
_CREDITS = {"type": "number", "minimum": 0, "maximum": _MAX}
_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
_NULLABLE_STR = {"type": ["string", "null"]}

_FIGURES = {
    "total_jobs": _COUNT,
    "completed_jobs": _COUNT,
    "failed_jobs": _COUNT,
    "credits_used": _CREDITS,
}
_FIGURES_REQUIRED = list(_FIGURES)

_MODEL_FIGURES = {
    "type": "object",
    "required": ["model", *_FIGURES_REQUIRED],
    "properties": {"model": {"type": "string", "minLength": 1}, **_FIGURES},
}

SUMMARY_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["days", "start_date", "end_date", "daily", *_FIGURES_REQUIRED],
    "properties": {
        "days": {"type": "integer", "minimum": 1, "maximum": 90},
        "start_date": _DATE,
        "end_date": _DATE,
        **_FIGURES,
        "by_model": {"type": "array", "items": _MODEL_FIGURES},
        "daily": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["date", *_FIGURES_REQUIRED],
                "properties": {
                    "date": _DATE,
                    **_FIGURES,
                    "by_model": {"type": "array", "items": _MODEL_FIGURES},
                },
            },
        },
    },
}

EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "created_at"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "created_at": {
            "type": "string",
            # ISO 8601 with a UTC offset or Z; parse_time does the rest.
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$",
        },
        "request_id": _NULLABLE_STR,
        "method": _NULLABLE_STR,
        "endpoint": _NULLABLE_STR,
        "status_code": {"type": ["integer", "null"], "minimum": -_MAX, "maximum": _MAX},
        "job_id": _NULLABLE_STR,
        "model": _NULLABLE_STR,
        "output_format": _NULLABLE_STR,
        "status": {
            "enum": ["pending", "created", "processing", "completed", "failed", None],
        },
        "credits_used": {"type": ["number", "null"], "minimum": 0, "maximum": _MAX},
        "duration_seconds": {"type": ["number", "null"], "minimum": 0, "maximum": _MAX},
        "error_code": _NULLABLE_STR,
        "metadata": {"type": ["object", "null"]},
    },
}

EVENTS_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["items"],
    "properties": {
        "limit": {"type": "integer", "minimum": 1},
        "items": {"type": "array", "items": EVENT_SCHEMA},
    },
}
