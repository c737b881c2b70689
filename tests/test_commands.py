"""The `/usage` slash command router, against a real SQLite store file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.commands import Reply, handle_command, summary_text
from bot.models import AlertState, Budget, EventsPage, Transition
from bot.store import Store
from tests.helpers import (
    FAILURE_RULE,
    NOW,
    T0,
    THREAD_URL,
    event_series,
    failing_hour,
    fill,
)


@pytest.fixture
def filled(db_path: Path) -> Iterator[Store]:
    store = Store(db_path)
    fill(store)
    yield store
    store.close()


def ask(store: Store, text: str) -> Reply:
    return handle_command(text, store=store, now=NOW, user="U123")


HELP = ["summary [days]", "events [limit]", "model NAME [days]", "alerts", "`public`"]

# text, what the answer must contain, what it must not, public?
ANSWERS: list[tuple[str, list[str], list[str], bool]] = [
    ("", HELP, [], False),
    ("   ", HELP, [], False),
    ("help", HELP, [], False),
    ("HELP", HELP, [], False),
    ("public", HELP, [], True),
    (
        "summary",
        [
            "Usage 2026-11-21 .. 2026-11-23 (7 days, UTC; as of 5 min ago)",
            "light    90         90       0       0.0%    180.0",
            "pro     300        268      32      10.7%  1,780.0",
            "total   390        358      32       8.2%  1,960.0",
            "credits per day: █▁█",
        ],
        [],
        False,
    ),
    ("summary 1", ["2026-11-23 .. 2026-11-23", "pro     120", "total   120"], ["light"], False),
    ("\u3000Summary\u3000 90  public ", ["(90 days, UTC", "total   390"], [], True),
    ("summary 2 PUBLIC", ["2026-11-22 .. 2026-11-23"], [], True),
    (
        "events",
        ["Latest 6 events (as of 0s ago)", "req_000099", "job_000099", "internal_error"],
        [],
        False,
    ),
    ("events 2", ["Latest 2 events", "req_000099", "req_000004"], ["req_000003"], False),
    ("events 50", ["Latest 6 events", "req_000000", "job_000000"], [], False),
    (
        "model pro",
        [
            "Model pro, 2026-11-21 .. 2026-11-23 (7 days, UTC; as of 5 min ago)",
            "2026-11-21   100      10      10.0%    600.0",
            "2026-11-23   120      20      16.7%    700.0",
            "total        300      32      10.7%  1,780.0",
            "credits per day:   ▅▁█",
            "fail rate per day: ▅▁█",
            "1 open alert(s):",
            "failed-job-rate [pro]: firing for 1 h 5 min, peak z = 6.2",
            f"• failed-job-rate [pro]: {THREAD_URL}",
        ],
        [],
        False,
    ),
    (
        "model light 3 public",
        [
            "Model light, 2026-11-21 .. 2026-11-23",
            "2026-11-23     0       0          -      0.0",  # absent that day: no jobs
            "fail rate per day: ▁▁ ",
            "No open alerts.",
        ],
        ["failed-job-rate", "Threads:"],
        True,
    ),
    ("model PRO 2", ["Model pro, 2026-11-22 .. 2026-11-23", "total        200"], [], False),
    (
        "alerts",
        [
            "1 open alert(s):",
            "failed-job-rate [pro]: firing for 1 h 5 min, peak z = 6.2",
            "firing   failed-job-rate for model pro (z = 6.2)",
            f"• failed-job-rate [pro]: {THREAD_URL}",
        ],
        [],
        False,
    ),
    ("alerts public", ["1 open alert(s):", THREAD_URL], [], True),
]


@pytest.mark.parametrize(("text", "present", "absent", "public"), ANSWERS)
def test_every_subcommand_answers_from_the_store(
    filled: Store, text: str, present: list[str], absent: list[str], public: bool
) -> None:
    reply = ask(filled, text)
    for part in present:
        assert part in reply.text
    for part in absent:
        assert part not in reply.text
    assert reply.public is public


def test_tables_are_monospace_and_links_are_outside_the_code_block(filled: Store) -> None:
    text = ask(filled, "alerts").text
    assert text.startswith("```\n") and text.index(THREAD_URL) > text.rindex("```")


# text, what the correction must say. Corrections are always ephemeral.
CORRECTIONS: list[tuple[str, list[str]]] = [
    ("summary 500", ["Days must be a whole number from 1 to 90", "`500`", "leave it out for 7"]),
    ("summary 0", ["from 1 to 90", "`0`"]),
    ("summary 3.5", ["from 1 to 90", "`3.5`"]),
    ("summary \uff17", ["from 1 to 90", "`\uff17`"]),  # full-width 7
    ("summary \u0663", ["from 1 to 90"]),  # Arabic-Indic 3: int() would take it
    ("summary 99999999999999999999999999999", ["from 1 to 90"]),
    ("summary " + "9" * 5000, ["from 1 to 90", "…"]),  # int() would refuse 5000 digits
    ("summary 500 public", ["from 1 to 90"]),
    ("summary 7 8", ["Too many words for `summary`", "`/usage summary [days]`"]),
    ("events -3", ["The number of events must be a whole number from 1 to 50", "`-3`"]),
    ("events 51", ["from 1 to 50", "leave it out for 10"]),
    ("events ten", ["from 1 to 50", "`ten`"]),
    ("alerts now", ["Too many words for `alerts`"]),
    (
        "frobnicate",
        ["I don't know `frobnicate`.", "`summary`, `events`, `model`, `segment`, `alerts`"],
    ),
    ("summry", ["I don't know `summry`. Did you mean `summary`?"]),
    ("\u200b", ["I don't know"]),  # a zero-width space is not whitespace
    ("<!channel> hi", ["I don't know `&lt;!channel&gt;`"]),  # no mention, no link
    ("`x`", ["I don't know `'x'`"]),  # cannot break out of the inline code
    ("x" * 10_000, ["I don't know `" + "x" * 29 + "…`"]),
    ("model", ["Which model?", "`/usage model NAME [days]`", "`light`, `pro`"]),
    ("model frob", ["I know no model called `frob`", "last 90 days: `light`, `pro`"]),
    ("model pro 500", ["Days must be a whole number from 1 to 90"]),
    ("model pro 7 8", ["Too many words for `model`"]),
]


@pytest.mark.parametrize(("text", "present"), CORRECTIONS)
def test_bad_input_gets_a_short_friendly_correction(
    filled: Store, text: str, present: list[str]
) -> None:
    reply = ask(filled, text)
    for part in present:
        assert part in reply.text
    assert reply.public is False
    assert len(reply.text) < 400 and "Traceback" not in reply.text


def test_an_empty_store_says_there_is_nothing_yet(db_path: Path) -> None:
    store = Store(db_path)
    try:
        assert "no summary stored yet (no data polled yet)" in ask(store, "summary").text
        assert "No events stored yet" in ask(store, "events").text
        assert "No open alerts." in ask(store, "alerts").text
        assert "Threads:" not in ask(store, "alerts").text
        assert "no usage summary is stored yet" in ask(store, "model pro").text
    finally:
        store.close()


def test_the_help_names_the_command_it_was_called_as(filled: Store) -> None:
    reply = handle_command("", store=filled, now=NOW, command="/usage-staging")
    assert "`/usage-staging summary 30`" in reply.text


def test_summary_text_is_the_plain_answer_the_terminal_prints(filled: Store) -> None:
    text = summary_text(filled, 7, NOW)
    assert text.startswith("Usage 2026-11-21 .. 2026-11-23") and "```" not in text


def test_a_model_alert_is_matched_by_its_field_not_by_a_lookalike_value(
    filled: Store,
) -> None:
    # A customer called "light" firing on a per-customer rule is not an alert on model light.
    t = Transition(
        "customer-spend",
        ("light",),
        ("metadata.customer_id",),
        "firing",
        T0,
        900.0,
        100.0,
        5.0,
        10,
        T0,
        5.0,
        900.0,
    )
    filled.save_decisions(
        [AlertState("customer-spend", ("light",), "firing", 1, 0, T0, 5.0, 900.0)],
        [t],
        {"customer-spend": T0},
        T0,
    )
    assert "No open alerts." in ask(filled, "model light").text
    assert "2 open alert(s)" in ask(filled, "alerts").text


def test_a_model_seen_only_in_events_has_no_daily_figures_yet(db_path: Path) -> None:
    store = Store(db_path)
    try:
        store.save_events(EventsPage(100, tuple(reversed(event_series(3)))), stored_at=T0)
        text = ask(store, "model pro").text
        assert "Model pro, last 7 days (UTC; no data polled yet)" in text
        assert "no daily figures for this model in these days." in text
    finally:
        store.close()


def test_model_says_what_drives_its_open_alert_and_otherwise_its_last_day(
    store: Store,
) -> None:
    """With the rules at hand, the open failure-rate alert is broken down in the window it
    was told with; without them, or once it has resolved, the last 24 hours are."""
    failing_hour(store, NOW)  # globex fails every job in the hour before NOW
    text = handle_command("model pro", store=store, now=NOW, rules=[FAILURE_RULE]).plain()
    drivers = text.split("What drives failed-job-rate [pro] (the 1 h ending 01:05 UTC): ")[1]
    assert drivers.startswith("6.1 failed jobs above the baseline (7 failed of 18 finished;")
    lines = drivers.splitlines()
    assert lines[1].startswith("  error code: internal_error 100% (+6.1)")
    assert lines[-2].startswith("  segment: enterprise ")
    assert lines[-1].startswith("  customer: globex 93% (+5.7), acme 11% (+0.7)")
    assert "Last 24 h" not in text
    # Not knowing the rules (or with no open alert), the last day against the week before.
    for rules, state in (((), "firing"), ([FAILURE_RULE], "ok")):
        store.save_decisions(
            [AlertState("failed-job-rate", ("pro",), state, 0, 0, None, 0.0, 0.0)], [], {}, NOW
        )
        text = handle_command("model pro", store=store, now=NOW, rules=rules).plain()
        assert "What drives" not in text
        day = text.split("Last 24 h against up to 7 days before it (stored events):\n")[1]
        failures, credits = day.split("\nCredits: ")
        assert failures.startswith("Failures: ") and "\n  customer: globex " in failures
        assert "error code" not in credits  # a failed job costs nothing
        # a steady week stored for 7 days and an hour: the days it holds, not 7 empty ones
        assert credits.startswith("0 credits above the baseline (25,920 against 25,920 ")


def test_silence_needs_a_reason_and_a_sane_duration_and_can_be_ended(filled: Store) -> None:
    assert "needs a reason" in ask(filled, "silence failed-job-rate/pro 2h").text
    assert "not a duration" in ask(filled, "silence failed-job-rate/pro 9w deploy").text
    assert "not a duration" in ask(filled, "silence failed-job-rate/pro 10s deploy").text
    said = ask(filled, "silence failed-job-rate/pro 2h deploy <!channel> in progress")
    assert "Silenced `failed-job-rate/pro` until" in said.text and not said.public
    assert "<!channel>" not in said.text  # quoted back harmlessly
    (silence,) = filled.silences(NOW)
    assert (silence.rule, silence.group) == ("failed-job-rate", ("pro",))
    assert silence.until == NOW + timedelta(hours=2)
    assert "Silenced:" in ask(filled, "alerts").text
    assert filled.silenced("failed-job-rate", ("pro",), NOW + timedelta(hours=1))
    assert filled.silenced("failed-job-rate", ("pro",), NOW + timedelta(hours=3)) is None  # expired
    assert filled.silenced("failed-job-rate", ("light",), NOW) is None
    assert "ended" in ask(filled, "unsilence failed-job-rate/pro").text
    assert filled.silences(NOW) == []
    assert "No silence" in ask(filled, "unsilence failed-job-rate/pro").text


def test_a_rule_wide_silence_covers_every_group(filled: Store) -> None:
    ask(filled, "silence spend-per-model 30m budget review")
    assert filled.silenced("spend-per-model", ("light",), NOW)
    assert filled.silenced("spend-per-model", ("pro",), NOW)
    assert filled.silenced("failed-job-rate", ("pro",), NOW) is None


def test_segment_answers_from_the_stored_events(filled: Store) -> None:
    answer = ask(filled, "segment Enterprise").text
    assert "Segment enterprise, last 8 days" in answer
    assert "total" in answer and "16.7%" in answer  # 1 failed of the 6 finished jobs
    assert "no segment `whales`" in ask(filled, "segment whales").text
    assert "`enterprise`" in ask(filled, "segment").text  # usage lists the segments seen
    assert "from 1 to 8" in ask(filled, "segment enterprise 30").text


def test_budget_answers_spend_to_date_and_the_forecast(filled: Store) -> None:
    """The pro model spent 1,780 credits on 21-23 November (the summary) plus the events
    of the 23rd the summary already counts: a 10,000 budget is at 18%."""
    budgets = (
        Budget("pro-monthly", 10_000.0, scope=(("model", "pro"),)),
        Budget("enterprise-week", 500.0, period="week", scope=(("segment", "enterprise"),)),
    )
    reply = handle_command("budget", store=filled, now=NOW, budgets=budgets)
    assert not reply.public
    lines = reply.text.splitlines()
    assert "Budgets (as of 0s ago)" in lines[1]
    pro = next(line for line in lines if line.startswith("pro-monthly"))
    assert pro.split()[:7] == ["pro-monthly", "model", "pro", "2026-11", "1,780", "10,000", "18%"]
    week = next(line for line in lines if line.startswith("enterprise-week"))
    assert "segment enterprise" in week and "2026-W48" in week and " 360 " in week  # 6 events
    none = handle_command("budget public", store=filled, now=NOW)
    assert none.public and "No budgets configured" in none.text
    assert "Usage:" in handle_command("budget now", store=filled, now=NOW).text
