"""What `serve` and Socket Mode answer themselves (not the command's answers): the
acknowledgements and apologies a Slack user sees, and the HTTP error bodies.

Pure: constants and plain values in, text out.
"""

from __future__ import annotations

FAILED_TEXT = "Sorry, I could not read the usage store just now; please try again shortly."
WORKING_TEXT = "Working on it: the answer follows here in a moment."

# HTTP error bodies: {"error": ...}
NOT_FOUND = "not_found"
NO_SIGNING_SECRET = "SLACK_SIGNING_SECRET is not set"
LENGTH_REQUIRED = "length_required"
BAD_CONTENT_LENGTH = "bad_content_length"
BODY_TOO_LARGE = "body_too_large"
INVALID_SIGNATURE = "invalid_signature"
NOT_A_SLASH_COMMAND = "not_a_slash_command"
STORE_UNAVAILABLE = "store_unavailable"  # GET /metrics could not read the store


def http_error(code: str) -> dict[str, object]:
    """The JSON body of an HTTP error answer."""
    return {"error": code}
