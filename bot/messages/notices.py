"""Ops notices' wording: the episodes the worker, the outbox and the hooks open and
clear (told once per change to the default channel), and how a notice or a post is
shown on the console and in Slack.

Pure: plain values in, text out.
"""

from __future__ import annotations

from datetime import datetime

# -- episodes -------------------------------------------------------------------------


def events_gap(
    limit: int,
    newest_stored_at: datetime,
    oldest_seen_at: datetime,
    missed: float | None = None,
    basis: str = "arrival rate",
) -> str:
    if oldest_seen_at == newest_stored_at:  # whole-second timestamps: within one second
        span = f"events of {newest_stored_at:%Y-%m-%d %H:%M:%S} UTC"
    else:
        span = (
            f"events between {newest_stored_at:%Y-%m-%d %H:%M:%S} and {oldest_seen_at:%H:%M:%S} UTC"
        )
    text = (
        f"More than {limit} events arrived between two polls: {span} may be missing, "
        "so counts there are low."
    )
    if missed is None:
        return text
    how = (
        "from the summary's count of jobs in that span"
        if basis == "summary"
        else "from the arrival rate around it"
    )
    if missed < 1:
        return f"{text} Probably none or very few were missed ({how})."
    return f"{text} About {missed_count(missed)} events were probably missed ({how})."


def missed_count(missed: float) -> str:
    """An estimate, rounded as far as it deserves: 7, 40, 1,200."""
    if missed < 20:
        return f"{round(missed):,}"
    if missed < 1000:
        return f"{round(missed, -1):,.0f}"
    return f"{round(missed, -2):,.0f}"


EVENTS_GAP_CLOSED = "Polls keep up with the events again: no gap since the last notice."


def key_refused(endpoint: str, error: object, probe_every: float) -> str:
    return (
        f"The usage API refuses our key at {endpoint} ({error}). Polling is paused "
        f"and probed every {int(probe_every)} s until it recovers."
    )


def key_accepted(endpoint: str) -> str:
    return f"The usage API accepts our key again at {endpoint}; polling resumed."


def schema_drift(endpoint: str, error: object) -> str:
    return (
        f"The usage API answered {endpoint} with a body we cannot trust ({error}); "
        "nothing from it was stored."
    )


def schema_matches(endpoint: str) -> str:
    return f"The usage API's answers at {endpoint} match the expected schema again."


def undeliverable(rule: str, error: object) -> str:
    return (
        f"Alerts of rule {rule} cannot be delivered: {error}. "
        "Check the rule's channel and the bot's membership and scopes."
    )


def deliverable(rule: str) -> str:
    return f"Alerts of rule {rule} are delivered again."


def hook_failing(budget: str, error: str) -> str:
    return (
        f"The enforcement hook of budget {budget} keeps failing ({error}); "
        "its events are kept and retried until it answers 2xx."
    )


def hook_delivers(budget: str) -> str:
    return f"The enforcement hook of budget {budget} delivers again."


# -- how notices and posts are shown -----------------------------------------------------


def notice_line(state: str, text: str) -> str:
    """A notice on the console: NOTICE when an episode opens, CLEARED when it ends."""
    label = "NOTICE" if state == "open" else "CLEARED"
    return f"{label}  {text}"


def notice_message(state: str, text: str) -> str:
    """A notice in Slack."""
    icon = ":large_orange_circle:" if state == "open" else ":large_green_circle:"
    return f"{icon} usage-bot: {text}"


def post_line(kind: str, text: str) -> str:
    """A budget event or digest on the console."""
    label = "BUDGET" if kind == "budget" else "DIGEST"
    return f"{label}  {text}"
