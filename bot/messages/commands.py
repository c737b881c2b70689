"""The `/usage` command's wording: help, corrections, and the fixed answers to silences
and button clicks. The bounds the help states are defined here, beside the sentences
that state them; `commands` parses with the same constants.

Pure: plain values in, text out.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import datetime

DAYS = (1, 90)
SLACK_EVENTS = (1, 50)  # more rows than this are unreadable in a Slack message
DEFAULT_DAYS = 7
DEFAULT_EVENTS = 10
MODELS_LOOKBACK = 90  # days of summary searched for "the models seen"
WORDS = (
    "summary",
    "events",
    "model",
    "segment",
    "alerts",
    "budget",
    "silence",
    "unsilence",
    "help",
)
SEGMENT_DAYS = (1, 8)  # segments come from stored events, kept for at least 8 days
PUBLIC = "public"
STATS = "stats"  # `alerts stats [days]`: per-rule alert figures
ECHO_MAX = 30  # how much of an unknown word is quoted back
THREADS_HEAD = "Threads:"
BAD_CLICK_TEXT = "Sorry, I could not read that button click."
IDLE_BUTTON_TEXT = "That button does nothing here."
BUTTON_SILENCE_REASON = "silenced from the alert's button"


def help_text(command: str = "/usage") -> str:
    c = command
    return "\n".join(
        [
            f"*{c}* answers from the usage the bot has stored:",
            f"• `{c} summary [days]`: totals and a per-model table ({_range(DAYS)} days,"
            f" default {DEFAULT_DAYS})",
            f"• `{c} events [limit]`: the newest events with request_id and job_id"
            f" ({_range(SLACK_EVENTS)}, default {DEFAULT_EVENTS})",
            f"• `{c} model NAME [days]`: one model's daily jobs, failures and credits,"
            " and its open alerts",
            f"• `{c} segment NAME [days]`: one customer segment's daily jobs, failures and"
            f" credits ({_range(SEGMENT_DAYS)} days, from the stored events)",
            f"• `{c} alerts`: open alerts, silences, the latest transitions and thread links",
            f"• `{c} alerts {STATS} [days]`: per rule, alerts, acknowledged, marked expected,"
            f" marked noise and the median time to acknowledge (default {DEFAULT_DAYS} days)",
            f"• `{c} budget`: spend to date against each budget, with the forecast",
            f"• `{c} silence RULE[/GROUP] DURATION REASON`: hold back an alert key (all its"
            " groups without /GROUP) for up to 7d, e.g. `failed-job-rate/pro 2h deploy`",
            f"• `{c} unsilence RULE[/GROUP]`: end that silence now",
            f"Add `{PUBLIC}` at the end to post the answer in the channel"
            " (otherwise only you see it).",
            f"Examples: `{c} summary 30`, `{c} events 5 public`, `{c} model pro 14`",
        ]
    )


# -- corrections ------------------------------------------------------------------------


def unknown_word_text(word: str, command: str) -> str:
    close = difflib.get_close_matches(word.lower(), WORDS, n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    words = ", ".join(f"`{w}`" for w in WORDS)
    return f"I don't know `{quote(word)}`.{hint} Try one of {words}, e.g. `{command} summary`."


def bad_number_text(what: str, got: str, bounds: tuple[int, int], default: int) -> str:
    return (
        f"{what} must be a whole number from {_range(bounds)} (got `{quote(got)}`);"
        f" leave it out for {default}."
    )


def extra_words_text(sub: str, usage: str, command: str) -> str:
    return f"Too many words for `{sub}`. Usage: `{command} {usage}`."


def unknown_model_text(name: str, seen: Sequence[str], command: str) -> str:
    if not seen:
        return f"I know no model called `{quote(name)}`: no usage summary is stored yet."
    listed = ", ".join(f"`{m}`" for m in seen)
    return (
        f"I know no model called `{quote(name)}`. Models seen in the last"
        f" {MODELS_LOOKBACK} days: {listed}. Try `{command} model {seen[0]}`."
    )


def missing_model_text(seen: Sequence[str], command: str) -> str:
    listed = ", ".join(f"`{m}`" for m in seen) or "none yet"
    return f"Which model? Usage: `{command} model NAME [days]`. Models seen: {listed}."


def segment_usage_text(seen: Sequence[str], command: str) -> str:
    return f"Usage: `{command} segment NAME [days]`. Segments seen: {_segments(seen)}."


def unknown_segment_text(name: str, seen: Sequence[str]) -> str:
    return f"I have no segment `{quote(name)}`. Segments seen: {_segments(seen)}."


def silence_usage_text(command: str, *, no_reason: bool = False) -> str:
    usage = (
        f"Usage: `{command} silence RULE[/GROUP] DURATION REASON`, e.g. "
        f"`{command} silence failed-job-rate/pro 2h deploy in progress`."
    )
    return (
        usage + " A silence needs a reason, so the next person knows why." if no_reason else usage
    )


def bad_duration_text(got: str) -> str:
    return f"`{quote(got)}` is not a duration from 1m to 7d (say 30m, 2h, 1d)."


def unsilence_usage_text(command: str) -> str:
    return f"Usage: `{command} unsilence RULE[/GROUP]`, e.g. `failed-job-rate/pro`."


def no_silence_text(key: str, command: str) -> str:
    return f"No silence on `{quote(key)}`; `{command} alerts` lists them."


# -- answers ----------------------------------------------------------------------------


def silenced_text(key: str, until: datetime, user: str | None, reason: str) -> str:
    who = f" by <@{user}>" if user else ""
    return (
        f":zipper_mouth_face: Silenced `{quote(key)}` until {until:%Y-%m-%d %H:%M} UTC"
        f"{who}: {reason}"
    )


def unsilenced_text(key: str) -> str:
    return f"Silence on `{quote(key)}` ended: its alerts are told again."


def acknowledged_note(user: str, now: datetime) -> str:
    return f":eyes: Acknowledged by <@{user}> at {now:%H:%M} UTC"


def silenced_note(user: str, until: datetime) -> str:
    return f":zipper_mouth_face: Silenced by <@{user}> until {until:%Y-%m-%d %H:%M} UTC"


def silences_list(silences: Sequence[tuple[str, tuple[str, ...] | None, datetime, str]]) -> str:
    """'\\nSilenced:' and one line per (rule, group or None for all, until, reason)."""
    lines = [
        f"• `{rule}{'' if group is None else '/' + '/'.join(group)}` until "
        f"{until:%Y-%m-%d %H:%M} UTC: {reason}"
        for rule, group, until, reason in silences
    ]
    return "\nSilenced:\n" + "\n".join(lines)


def threads_list(links: Sequence[str]) -> str:
    """The thread links under an answer, outside its code block (Slack links nothing
    inside one)."""
    return f"\n{THREADS_HEAD}" + "".join(f"\n• {escape(line)}" for line in links)


# -- small pure helpers -----------------------------------------------------------------


def _range(bounds: tuple[int, int]) -> str:
    return f"{bounds[0]} to {bounds[1]}"


def _segments(seen: Sequence[str]) -> str:
    return ", ".join(f"`{s}`" for s in seen) or "none stored yet"


def escape(text: str) -> str:
    """Slack's three control characters; the rest of mrkdwn is harmless here."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quote(word: str) -> str:
    """A user's word, quoted back short and inert (no mentions, links or code breaks)."""
    short = word if len(word) <= ECHO_MAX else word[: ECHO_MAX - 1] + "…"
    return escape(short.replace("`", "'"))


def code(text: str) -> str:
    """A monospace block, so the tables line up in Slack."""
    return f"```\n{escape(text)}\n```"
