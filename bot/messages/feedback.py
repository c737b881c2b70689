"""Feedback wording: the line a parent shows once it is marked expected or noise.

Pure: plain values in, text out.
"""

from __future__ import annotations

from datetime import datetime

from bot.models import EXPECTED, NOISE, Feedback

MARK_ICON = {EXPECTED: ":ballot_box_with_check:", NOISE: ":mute:"}


# -- on the parent -----------------------------------------------------------------------


def marked_note(verdict: str, user: str, at: datetime) -> str:
    return f"{MARK_ICON.get(verdict, '')} Marked {verdict} by <@{user}> at {at:%H:%M} UTC".strip()


def feedback_note(feedback: Feedback | None) -> str | None:
    """The parent's feedback line for a stored verdict (None: nobody marked it)."""
    if feedback is None or not feedback.verdict or not feedback.verdict_by:
        return None
    assert feedback.verdict_at is not None
    return marked_note(feedback.verdict, feedback.verdict_by, feedback.verdict_at)


def overruled_text(note: str, before: str, by: str) -> str:
    """What the clicker reads when the click changed someone's verdict."""
    return f"{note} (it was marked {before} by <@{by}>; the last click counts)"
