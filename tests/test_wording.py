"""The wording moved into bot.messages, pinned byte for byte (as the code before the move
wrote it): users must see exactly the same texts. New wording (feedback on alerts, what
drives an alert, budget thresholds told together, the digest's comparison) is pinned here
as it was written; change it here deliberately."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot import digest
from bot.breakdown import failures, spend
from bot.messages import budget, commands, feedback, notices, transport
from bot.messages.breakdown import breakdown_text, last_day_text
from bot.models import Feedback, RuleStats, Tally

AT = datetime(2026, 11, 23, 9, 5, 7, tzinfo=UTC)
LATER = datetime(2026, 11, 23, 11, 5, tzinfo=UTC)


def test_command_answers_and_corrections() -> None:
    assert commands.no_silence_text("rule/<x>", "/usage") == (
        "No silence on `rule/&lt;x&gt;`; `/usage alerts` lists them."
    )
    assert (
        commands.unsilenced_text("r/pro") == "Silence on `r/pro` ended: its alerts are told again."
    )
    assert commands.unsilence_usage_text("/u") == (
        "Usage: `/u unsilence RULE[/GROUP]`, e.g. `failed-job-rate/pro`."
    )
    usage = (
        "Usage: `/usage silence RULE[/GROUP] DURATION REASON`, e.g. "
        "`/usage silence failed-job-rate/pro 2h deploy in progress`."
    )
    assert commands.silence_usage_text("/usage") == usage
    assert commands.silence_usage_text("/usage", no_reason=True) == (
        usage + " A silence needs a reason, so the next person knows why."
    )
    assert commands.bad_duration_text("9w`") == (
        "`9w'` is not a duration from 1m to 7d (say 30m, 2h, 1d)."
    )
    assert commands.silenced_text("r/pro", LATER, "U1", "deploy") == (
        ":zipper_mouth_face: Silenced `r/pro` until 2026-11-23 11:05 UTC by <@U1>: deploy"
    )
    assert commands.silenced_text("r", LATER, None, "x") == (
        ":zipper_mouth_face: Silenced `r` until 2026-11-23 11:05 UTC: x"
    )
    assert commands.acknowledged_note("U1", AT) == ":eyes: Acknowledged by <@U1> at 09:05 UTC"
    assert commands.silenced_note("U1", LATER) == (
        ":zipper_mouth_face: Silenced by <@U1> until 2026-11-23 11:05 UTC"
    )
    assert commands.BAD_CLICK_TEXT == "Sorry, I could not read that button click."
    assert commands.IDLE_BUTTON_TEXT == "That button does nothing here."
    assert commands.BUTTON_SILENCE_REASON == "silenced from the alert's button"
    assert commands.segment_usage_text([], "/usage") == (
        "Usage: `/usage segment NAME [days]`. Segments seen: none stored yet."
    )
    assert commands.unknown_segment_text("x" * 40, ["a", "b"]) == (
        f"I have no segment `{'x' * 29}…`. Segments seen: `a`, `b`."
    )
    assert commands.silences_list(
        [("r", None, LATER, "why"), ("r", ("pro", "eu"), LATER, "y")]
    ) == (
        "\nSilenced:\n• `r` until 2026-11-23 11:05 UTC: why"
        "\n• `r/pro/eu` until 2026-11-23 11:05 UTC: y"
    )
    assert commands.threads_list(["r [a&b]: <link>"]) == "\nThreads:\n• r [a&amp;b]: &lt;link&gt;"


def test_ops_notices() -> None:
    assert notices.events_gap(100, AT, LATER) == (
        "More than 100 events arrived between two polls: events between 2026-11-23 09:05:07 "
        "and 11:05:00 UTC may be missing, so counts there are low."
    )
    assert notices.EVENTS_GAP_CLOSED == (
        "Polls keep up with the events again: no gap since the last notice."
    )
    assert notices.key_refused("/v1/usage/events", "HTTP 401", 300.0) == (
        "The usage API refuses our key at /v1/usage/events (HTTP 401). Polling is paused "
        "and probed every 300 s until it recovers."
    )
    assert (
        notices.key_accepted("/e") == "The usage API accepts our key again at /e; polling resumed."
    )
    assert notices.schema_drift("/e", "bad") == (
        "The usage API answered /e with a body we cannot trust (bad); nothing from it was stored."
    )
    assert notices.schema_matches("/e") == (
        "The usage API's answers at /e match the expected schema again."
    )
    assert notices.undeliverable("r", "Slack said x (HTTP 200)") == (
        "Alerts of rule r cannot be delivered: Slack said x (HTTP 200). "
        "Check the rule's channel and the bot's membership and scopes."
    )
    assert notices.deliverable("r") == "Alerts of rule r are delivered again."
    assert notices.hook_failing("b", "HTTP 500") == (
        "The enforcement hook of budget b keeps failing (HTTP 500); "
        "its events are kept and retried until it answers 2xx."
    )
    assert notices.hook_delivers("b") == "The enforcement hook of budget b delivers again."
    assert notices.notice_line("open", "t") == "NOTICE  t"
    assert notices.notice_line("cleared", "t") == "CLEARED  t"
    assert notices.notice_message("open", "t") == ":large_orange_circle: usage-bot: t"
    assert notices.notice_message("cleared", "t") == ":large_green_circle: usage-bot: t"
    assert notices.post_line("budget", "t") == "BUDGET  t"
    assert notices.post_line("digest", "t") == "DIGEST  t"


def test_transport_texts() -> None:
    assert transport.FAILED_TEXT == (
        "Sorry, I could not read the usage store just now; please try again shortly."
    )
    assert transport.WORKING_TEXT == "Working on it: the answer follows here in a moment."
    assert transport.http_error(transport.NO_SIGNING_SECRET) == {
        "error": "SLACK_SIGNING_SECRET is not set"
    }
    codes = [
        transport.NOT_FOUND,
        transport.LENGTH_REQUIRED,
        transport.BAD_CONTENT_LENGTH,
        transport.BODY_TOO_LARGE,
        transport.INVALID_SIGNATURE,
        transport.NOT_A_SLASH_COMMAND,
    ]
    assert codes == [
        "not_found",
        "length_required",
        "bad_content_length",
        "body_too_large",
        "invalid_signature",
        "not_a_slash_command",
    ]


def test_feedback_texts() -> None:
    assert feedback.marked_note("expected", "U1", AT) == (
        ":ballot_box_with_check: Marked expected by <@U1> at 09:05 UTC"
    )
    assert feedback.marked_note("noise", "U2", LATER) == ":mute: Marked noise by <@U2> at 11:05 UTC"
    said = Feedback("r", ("pro",), AT, "noise", "U2", LATER)
    assert feedback.feedback_note(said) == ":mute: Marked noise by <@U2> at 11:05 UTC"
    assert feedback.feedback_note(Feedback("r", ("pro",), AT, acked_by="U1", acked_at=AT)) is None
    assert feedback.overruled_text("Marked noise", "expected", "U1") == (
        "Marked noise (it was marked expected by <@U1>; the last click counts)"
    )
    stats = [RuleStats("failed-job-rate", 12, 9, 7, 3, 754.0), RuleStats("spend", 1, 0, 0, 1, None)]
    table = (
        "rule             alerts  acknowledged  expected  noise  median time to ack\n"
        "---------------  ------  ------------  --------  -----  ------------------\n"
        "failed-job-rate      12             9         7      3              13 min\n"
        "spend                 1             0         0      1                   -"
    )
    assert feedback.stats_report(stats, 7, AT, LATER) == (
        "Alerts per rule, last 7 days (episodes that began 2026-11-23 09:05 .. "
        "2026-11-23 11:05 UTC):\n" + table
    )
    assert feedback.stats_report([], 1, AT, LATER) == (
        "No alerts began in the last 1 day (2026-11-23 09:05 .. 11:05 UTC)."
    )
    assert feedback.digest_stats_lines(feedback.stats_rows(stats), 7) == [
        "*Alerts per rule, last 7 days*",
        f"```\n{table}\n```",
    ]
    assert feedback.digest_stats_lines([], 7) == []
    assert feedback.unknown_rule_text("x", ["a", "b"]) == (
        "tune: no rule named 'x' in the rules file (rules: a, b)"
    )
    assert feedback.nothing_marked_text("r", 7) == (
        "tune: no alert of r that began in the last 7 days is marked expected or noise; "
        "mark some with the buttons on their parents (or try more --days)"
    )
    z4, z5 = (("z", 4.0),), (("z", 5.0),)
    assert feedback.tune_suggestion(z4, z4) == (
        "Suggestion: keep z = 4: it keeps every expected alert and drops the noise. "
        "Nothing was changed."
    )
    assert feedback.tune_suggestion(z4, z5) == (
        "Suggestion: z = 5 (now 4): it keeps every expected alert and drops the noise.\n"
        "Nothing was changed: to apply it, set in the rule in rules.yaml:\n"
        "    z: 5"
    )
    # With the evidence test's budget too: the lines to paste name what changes only,
    # never a number YAML would read as text (5e-05).
    own, both = (("z", 4.0), ("false_alerts", 0.5)), (("z", 4.5), ("false_alerts", 0.00005))
    assert feedback.tune_suggestion(own, own) == (
        "Suggestion: keep z = 4, false_alerts = 0.5: it keeps every expected alert and "
        "drops the noise. Nothing was changed."
    )
    assert feedback.tune_suggestion(own, (("z", 4.0), ("false_alerts", 0.05))) == (
        "Suggestion: false_alerts = 0.05 (now 0.5): it keeps every expected alert and drops "
        "the noise.\nNothing was changed: to apply it, set in the rule in rules.yaml:\n"
        "    false_alerts: 0.05"
    )
    assert feedback.tune_suggestion(own, both) == (
        "Suggestion: z = 4.5 (now 4), false_alerts = 0.00005 (now 0.5): it keeps every "
        "expected alert and drops the noise.\nNothing was changed: to apply it, set in the "
        "rule in rules.yaml:\n    z: 4.5\n    false_alerts: 0.00005"
    )
    assert feedback.tune_suggestion(z4, None, (z5, 1, 2), (2, 3)) == (
        "Suggestion: no setting tried keeps every expected alert and drops all the noise; "
        "closest: z = 5 (keeps 1 of 2 expected, drops 2 of 3 noise). Nothing was changed."
    )
    assert feedback.tune_report("r", AT, LATER, (1, 2), z4, [(z4, 3, 1, 0, 2)]) == (
        "r judged again over the stored events of 2026-11-23 09:05 .. 2026-11-23 11:05 UTC\n"
        "1 alert(s) marked expected, 2 marked noise in that span.\n"
        "z        alerts  expected kept  noise dropped  unlabelled\n"
        "-------  ------  -------------  -------------  ----------\n"
        "4 (now)       3         1 of 1         0 of 2           2"
    )
    rows = [(own, 3, 1, 0, 2), (both, 1, 1, 2, 0)]
    assert feedback.tune_report("r", AT, LATER, (1, 2), own, rows).splitlines()[2:] == [
        "z    false_alerts  alerts  expected kept  noise dropped  unlabelled",
        "---  ------------  ------  -------------  -------------  ----------",
        "4       0.5 (now)       3         1 of 1         0 of 2           2",
        "4.5       0.00005       1         1 of 1         2 of 2           0",
    ]
    assert (
        "• `/usage alerts stats [days]`: per rule, alerts, acknowledged, marked expected, "
        "marked noise and the median time to acknowledge (default 7 days)"
    ) in commands.help_text()


def test_what_drives_an_alert() -> None:
    start, end = LATER - timedelta(hours=1), LATER
    window = {
        "error_code": [Tally("", 56, 0, 0.0), Tally("internal_error", 60, 60, 0.0)]
        + [Tally("timeout", 4, 4, 0.0)],
        "customer": [Tally("acme", 60, 58, 0.0), Tally("globex", 40, 4, 0.0)]
        + [Tally("", 20, 2, 0.0)],
    }
    reference = {"error_code": [Tally("internal_error", 6, 6, 0.0), Tally("timeout", 4, 4, 0.0)]}
    found = failures(window, reference, 0.05, start, end)
    assert breakdown_text(found) == (
        "*What drives it* (the 1 h ending 11:05 UTC): 58 failed jobs above the baseline "
        "(64 failed of 120 finished; 6 expected at 5.0%).\n"
        "• *error code:* `internal_error` 97% (+56) · `timeout` 3% (+1.6)\n"
        "• *customer:* `acme` 95% (+55) · `globex` 3% (+2) · (none) 2% (+1)"
    )
    assert breakdown_text(found, markup=False, title="What drives r [pro]") == (
        "What drives r [pro] (the 1 h ending 11:05 UTC): 58 failed jobs above the baseline "
        "(64 failed of 120 finished; 6 expected at 5.0%).\n"
        "  error code: internal_error 97% (+56), timeout 3% (+1.6)\n"
        "  customer: acme 95% (+55), globex 3% (+2), (none) 2% (+1)"
    )
    costs = {"customer": [Tally(f"c{i}", 1, 0, 100.0 * (6 - i)) for i in range(5)]}
    costs["customer"].append(Tally("big", 1, 0, 5000.0))
    before = {"customer": [Tally(f"c{i}", 1, 0, 100.0) for i in range(6)]}
    paid = spend(costs, before, 600.0, start, end)
    assert breakdown_text(paid) == (
        "*What drives it* (the 1 h ending 11:05 UTC): 6,400 credits above the baseline "
        "(7,000 against 600 expected).\n"
        "• *customer:* `big` 78% (+5,000) · `c0` 8% (+500) · `c1` 6% (+400) · "
        "3 others 9% · offset -2% (1 under their share)"
    )
    quiet = failures({"customer": [Tally("acme", 10, 0, 0.0)]}, {}, 0.05, start, end)
    assert breakdown_text(quiet) == (
        "*What drives it* (the 1 h ending 11:05 UTC): 0.5 failed jobs below the baseline "
        "(0 failed of 10 finished; 0.5 expected at 5.0%).\n"
        "• *customer:* `acme` 100% (-0.5)"
    )
    assert last_day_text((found, paid)) == (
        "Last 24 h against up to 7 days before it (stored events):\n"
        "Failures: 58 failed jobs above the baseline (64 failed of 120 finished; "
        "6 expected at 5.0%).\n"
        "  error code: internal_error 97% (+56), timeout 3% (+1.6)\n"
        "  customer: acme 95% (+55), globex 3% (+2), (none) 2% (+1)\n"
        "Credits: 6,400 credits above the baseline (7,000 against 600 expected).\n"
        "  customer: big 78% (+5,000), c0 8% (+500), c1 6% (+400), 3 others 9%, "
        "offset -2% (1 under their share)"
    )
    assert last_day_text(None) == (
        "Last 24 h: no stored events in the 7 days before to compare them with."
    )


def test_budget_thresholds_told_together_and_the_digests_comparison() -> None:
    state = {
        "budget": "pro-monthly",
        "scope": {"model": "pro"},
        "period": {"kind": "month", "label": "2026-11", "timezone": "UTC"},
        "limit_credits": 1000.0,
        "spent_credits": 850.0,
        "used_percent": 85.0,
        "forecast": None,
        "daily_credits": [],
    }
    events = [{"kind": "threshold", "threshold": t} for t in (50.0, 80.0)]
    assert budget.event_text(events, state) == (
        ":money_with_wings: Budget *pro-monthly* (model pro) passed 50% and 80% of its limit.\n"
        "850 of 1,000 credits used (85%) in 2026-11 (UTC).\n"
        "Forecast: not enough data yet."
    )
    three = [*events, {"kind": "threshold", "threshold": 100.0}]
    assert budget.event_text(three, state).startswith(
        ":rotating_light: Budget *pro-monthly* (model pro) passed 50%, 80% and 100% of its limit."
    )
    assert budget.event_text(events[:1], state).startswith(
        ":money_with_wings: Budget *pro-monthly* (model pro) passed 50% of its limit."
    )
    day = date(2026, 11, 22)  # a Sunday
    assert digest.weekday_note(day, 4) == "Credits against the median of the 4 Sundays before."
    assert digest.weekday_note(day, 1) == (
        "Credits against the Sunday before (all that are stored; up to 4)."
    )
    assert digest.weekday_note(day, 0) == (
        "Credits: no earlier Sunday is stored yet to compare with."
    )


def test_incident_texts() -> None:
    """An incident's parent and the replies that name their key (bot.messages.incidents)."""
    from bot.messages import incidents
    from bot.models import AlertGroup, GroupMember, Rule, Transition

    def member(model: str, state: str = "firing", how: str = "open") -> GroupMember:
        return GroupMember(
            rule="failed-job-rate" if model else "total-failure-rate",
            group=(model,) if model else (),
            group_by=("model",) if model else (),
            metric="failure_rate",
            state=state,
            how=how,
            since=AT,
            at=AT,
            value=0.412,
            baseline=0.021,
            zscore=7.34,
            resolved_at=LATER if state == "resolved" else None,
        )

    rules = {
        "failed-job-rate": Rule("failed-job-rate", "failure_rate", ("model",), severity="critical"),
        "total-failure-rate": Rule("total-failure-rate", "failure_rate"),
    }
    group = AlertGroup(
        "g1",
        "failed-job-rate",
        "#a",
        "firing",
        AT,
        AT,
        (member("light"), member("pro", "resolved"), member("human", how="join")),
    )
    assert incidents.group_head(group, rules, "<!here>") == (
        "<!here> :rotating_light: *failed-job-rate* is firing for 3 models: light, pro, human"
    )
    assert (
        incidents.group_fallback(group) == "FIRING: failed-job-rate for 3 models: light, pro, human"
    )
    assert incidents.member_line(group.members[0], with_rule=False) == (
        "• *model light*: 41.2% against a baseline of 2.1% (z 7.3)"
    )
    assert incidents.member_line(group.members[1], with_rule=True) == (
        "• :white_check_mark: failed-job-rate for model pro: resolved at 11:05 UTC; "
        "fired at 41.2% against a baseline of 2.1% (z 7.3)"
    )
    blocks = incidents.group_parent_blocks(group, rules, group.members[0])
    assert [b["text"]["text"] for b in blocks[1:3]] == [  # type: ignore[index]
        "*Since:* 2026-11-23 09:05 UTC · *1 of 3 resolved*",
        "• *model light*: 41.2% against a baseline of 2.1% (z 7.3)\n"
        "• :white_check_mark: model pro: resolved at 11:05 UTC; fired at 41.2% against a "
        "baseline of 2.1% (z 7.3)\n"
        "• *model human*: 41.2% against a baseline of 2.1% (z 7.3)",
    ]
    assert [e["text"] for b in blocks[3:5] for e in b["elements"]] == [  # type: ignore[attr-defined]
        "Each alert's examples and chart are in the thread.",
        "rule `failed-job-rate` · severity critical · usage-bot",
    ]
    folded = AlertGroup(
        "g2",
        "failed-job-rate",
        "#a",
        "resolved",
        AT,
        LATER,
        (member("light", "resolved"), member("", "resolved")),
    )
    assert incidents.group_head(folded, rules, None) == (
        ":white_check_mark: *total-failure-rate* resolved after 2 h for the account, "
        "with *failed-job-rate* for model light"
    )
    assert incidents.group_fallback(folded) == (
        "RESOLVED: total-failure-rate for the account, with failed-job-rate for model light"
    )
    t = Transition(
        "failed-job-rate",
        ("pro",),
        ("model",),
        "firing",
        LATER,
        0.5,
        0.02,
        9.04,
        40.0,
        AT,
        9.04,
        0.5,
        900.0,
    )
    assert incidents.member_head(t, "failure_rate", 900.0, "open") == (
        "*failed-job-rate for model pro*: 50.0% against a baseline of 2.0% (z 9.0) "
        "in the 15 min ending 11:05 UTC"
    )
    assert incidents.member_head(t, "failure_rate", 900.0, "join", mention="<!here>") == (
        "<!here> :heavy_plus_sign: *failed-job-rate for model pro* joined at 11:05 UTC: "
        "50.0% against a baseline of 2.0% (z 9.0)"
    )
    assert incidents.member_head(
        t, "failure_rate", 900.0, "fold", lead="total-failure-rate for the account"
    ) == (
        ":heavy_plus_sign: *failed-job-rate for model pro* folded in under "
        "total-failure-rate for the account at 11:05 UTC: 50.0% against a baseline of 2.0% "
        "(z 9.0)"
    )
    assert incidents.member_resolve_text(t, "failure_rate", 2, 4) == (
        ":white_check_mark: *failed-job-rate for model pro* resolved at 2026-11-23 11:05 UTC "
        "after 2 h: now 50.0% in the 15 min ending 11:05 UTC against a baseline of 2.0% "
        "(z 9.0). Peak 50.0% (z 9.0). 2 of 4 resolved."
    )
    assert incidents.member_resolve_text(t, "failure_rate", 4, 4).endswith(
        "(z 9.0). All 4 resolved."
    )
    assert incidents.member_reminder_text(t, "still.") == "*failed-job-rate for model pro*: still."


def test_a_resolution_and_a_reminder_name_the_window_their_figure_covers() -> None:
    """A spend rule fires on a run of minutes and resolves on its hour: 'now' says which,
    and its z, so a resolution at 2.5x the hour's baseline reads as what it is (the run
    has stopped; the hour still holds it). A transition stored before windows were kept
    (window 0) reads as it did."""
    from bot.messages import alerts
    from bot.models import Transition

    resolved = Transition(
        "total-spend", (), (), "resolved", LATER, 69382.0, 27906.0, 1.6, 69382.0, AT,
        6.3, 21211.0, 3600.0,
    )  # fmt: skip
    assert alerts.resolve_text(resolved, "spend") == (
        ":white_check_mark: Resolved at 2026-11-23 11:05 UTC after 2 h: now 69,382 credits "
        "in the 1 h ending 11:05 UTC against a baseline of 27,906 credits (z 1.6). "
        "Peak 21,211 credits (z 6.3)."
    )
    assert alerts.reminder_text(resolved, "spend").startswith(
        ":hourglass: Still firing after 2 h: now 69,382 credits in the 1 h ending 11:05 UTC "
    )
    old = Transition(
        "total-spend", (), (), "resolved", LATER, 10.0, 20.0, 0.1, 10.0, AT, 6.3, 21211.0
    )
    assert "now 10 credits against a baseline of 20 credits (z 0.1)." in alerts.resolve_text(
        old, "spend"
    )
