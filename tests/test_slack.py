"""Alerts as Slack threads, delivered exactly once: the real WebClient against the local
stand-in of the Slack Web API, the worker against the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot import messages
from bot.models import PollConfig, Rule, RuleSet, Transition
from bot.notify import SlackNotifier, make_web_clients
from bot.standins.simulator import Incident, ManualClock, Simulator
from bot.standins.slack import SlackStandIn
from bot.store import Store
from tests.helpers import SlackRig, second_looks

START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # a Monday
SPIKE = Incident(
    "failure_spike",
    START + timedelta(hours=10),
    START + timedelta(hours=11),
    model="pro",
    failure_rate=0.6,
)
RULE = Rule(
    name="failed-job-rate",
    metric="failure_rate",
    group_by=("model",),
    bucket=900,
    baseline=7 * 86400,
    method="plain",
    z=4,
    min_volume=10,
    min_rate=0.05,
    recover_for=2,
    severity="critical",
    runbook="https://runbooks.example/failures",
)
RULES = RuleSet(poll=PollConfig(events_every=60, summary_every=3600), rules=(RULE,))
CHANNEL = "#usage-alerts"


class Rig(SlackRig):
    def __init__(
        self,
        db: str | Path,
        slack: SlackStandIn,
        sim: Simulator,
        clock: ManualClock,
        rule: Rule = RULE,
    ) -> None:
        super().__init__(db, slack, sim, clock, (rule,), poll=RULES.poll, channel=CHANNEL)


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


@pytest.fixture
def world() -> tuple[Simulator, ManualClock]:
    clock = ManualClock(START + timedelta(hours=9, minutes=30))
    return Simulator(start=START, clock=clock, jobs_per_hour=600, incidents=[SPIKE]), clock


def parents(slack: SlackStandIn) -> list:  # type: ignore[type-arg]
    return [m for m in slack.messages(CHANNEL) if m.metadata]


def test_one_thread_per_alert_with_real_failing_events_and_an_edited_parent_on_resolve(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock)
    rig.run_until(START + timedelta(hours=13))
    rig.close()
    (parent,) = parents(slack)
    assert parent.metadata["event_type"] == "usage_alert"
    payload = parent.metadata["event_payload"]
    assert payload["key"] == {"model": "pro"} and payload["rule"] == "failed-job-rate"
    assert payload["state"] == "resolved"  # the edit updated the metadata too
    assert "<!here>" in str(parent.revisions[0].blocks if parent.revisions else parent.blocks)
    assert parent.edited and "resolved after" in str(parent.blocks)
    replies = parent.replies
    details = replies[0]
    failed = {e["request_id"]: e for e in sim.events_until(clock()) if e["status"] == "failed"}
    told = [r for r in failed if r in str(details.blocks)]
    assert told and all(failed[r]["model"] == "pro" for r in told)
    assert all(failed[r]["job_id"] in str(details.blocks) for r in told)
    assert any("Resolved at" in (r.text or "") for r in replies)
    assert [f.thread_ts for f in slack.files] == [parent.ts]  # the chart, in the thread
    assert slack.files[0].content.startswith(b"\x89PNG")


def test_rate_limit_then_server_error_then_success_delivers_once(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock)
    slack.rate_limit("chat.postMessage", retry_after=1)
    slack.server_error("chat.postMessage", status=500)
    rig.run_until(START + timedelta(hours=10, minutes=40))
    assert len(parents(slack)) == 0  # the 500 came after the 429: backing off
    assert rig.store.undelivered()
    rig.wall.now += 3600  # the backoff has passed
    rig.run_until(START + timedelta(hours=10, minutes=45))
    rig.close()
    assert len(parents(slack)) == 1
    assert slack.calls("chat.postMessage")[0].status == 429


def test_a_post_whose_answer_is_lost_is_found_again_not_posted_twice(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock)
    began = rig.wall()
    slack.post_then_drop()  # Slack stores the parent; the bot never hears back
    rig.run_until(START + timedelta(hours=10, minutes=40))
    assert len(parents(slack)) == 1 and rig.store.undelivered()
    assert second_looks(slack, began - 2 * 3600) == []  # (the cold start's scan is not one)
    rig.wall.now += 3600
    rig.run_until(START + timedelta(hours=13))
    rig.close()
    # It looked for the lost parent before posting again, and found it.
    looks = second_looks(slack, began - 2 * 3600)
    assert [r.method for r in looks][:1] == ["conversations.history"]
    (parent,) = parents(slack)
    assert parent.replies and parent.edited


def test_a_crash_between_post_and_record_does_not_post_a_second_parent(
    slack: SlackStandIn,
    world: tuple[Simulator, ManualClock],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock)
    real_done = Store.delivery_done

    def die(self, transition_id, step, channel, ts):  # type: ignore[no-untyped-def]
        raise SystemExit("killed right after the post")  # nothing after the post is recorded

    monkeypatch.setattr(Store, "delivery_done", die)
    with pytest.raises(SystemExit):
        rig.run_until(START + timedelta(hours=10, minutes=40))
    rig.close()
    monkeypatch.setattr(Store, "delivery_done", real_done)
    assert len(parents(slack)) == 1
    restarted = Rig(tmp_path / "bot.db", slack, sim, clock)  # same file: a restart
    restarted.wall.now += 3600
    restarted.run_until(START + timedelta(hours=13))
    restarted.close()
    (parent,) = parents(slack)
    assert parent.edited and len([r for r in parent.replies if "Resolved" in (r.text or "")]) == 1


def test_a_fresh_database_adopts_the_open_thread_instead_of_posting_again(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    first = Rig(tmp_path / "first.db", slack, sim, clock)
    first.run_until(START + timedelta(hours=10, minutes=40))
    first.close()
    assert len(parents(slack)) == 1
    # The dyno restarts with an empty disk in the middle of the incident.
    second = Rig(tmp_path / "second.db", slack, sim, clock)
    second.run_until(START + timedelta(hours=13))
    second.close()
    (parent,) = parents(slack)
    assert parent.edited and any("Resolved" in (r.text or "") for r in parent.replies)


def test_block_and_text_limits_hold_for_an_alert_with_500_failing_events(
    slack: SlackStandIn, tmp_path: Path
) -> None:
    at = START + timedelta(hours=10)
    ids = tuple(f"req_{i:06d}" for i in range(500))
    jobs = tuple(f"job_{i:06d}" for i in range(500))
    t = Transition(
        RULE.name,
        ("pro",),
        ("model",),
        "firing",
        at,
        0.9,
        0.02,
        40.0,
        555.0,
        at,
        40.0,
        0.9,
        900.0,
        ids,
        jobs,
    )
    parent = messages.parent_blocks(t, RULE, mention="<!here>", spark="▁▂▃█")
    details = messages.detail_blocks(t, [], RULE.metric)
    for blocks in (parent, details):
        assert len(blocks) <= 50
        assert all(len(b.get("text", {}).get("text", "")) < 3000 for b in blocks)  # type: ignore[union-attr]
    assert "and 497 more in the thread" in str(parent)
    store = Store(tmp_path / "bot.db")
    store.save_decisions([], [t], {}, at)
    reader, poster = make_web_clients("xoxb-test", slack.url, timeout=3)
    notifier = SlackNotifier(
        reader=reader, poster=poster, store=store, rules={RULE.name: RULE}, default_channel=CHANNEL
    )
    ((tid, stored),) = store.undelivered()
    notifier.send(tid, stored)  # the stand-in refuses what Slack would refuse
    store.close()
    (message,) = parents(slack)
    assert len(message.replies) == 1 and len(messages.alert_fallback(t, "failure_rate")) < 200


def test_a_long_incident_gets_reminders_in_its_thread_not_new_parents(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock, rule=replace(RULE, remind_every=1200))
    rig.run_until(START + timedelta(hours=11, minutes=30))
    rig.close()
    (parent,) = parents(slack)
    reminders = [r for r in parent.replies if "Still firing" in (r.text or "")]
    assert len(reminders) >= 2


def test_ops_notices_go_to_the_default_channel_once_per_episode(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock)
    rig.run_until(START + timedelta(hours=9, minutes=40))
    sim.inject("401", "events", times=-1)
    rig.run_until(START + timedelta(hours=10, minutes=10))
    sim.clear_faults()
    rig.run_until(START + timedelta(hours=10, minutes=30))
    rig.close()
    notices = [m for m in slack.messages(CHANNEL) if "our key" in (m.text or "")]
    assert len(notices) == 2  # (the half hour without events also opened a gap episode)
    assert "refuses our key" in notices[0].text and "accepts our key again" in notices[1].text
    assert "sim-key" not in notices[0].text


def test_a_channel_the_bot_cannot_post_to_is_reported_once_in_the_default_channel(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    slack.add_channel("private-ops", member=False)
    rig = Rig(tmp_path / "bot.db", slack, sim, clock, rule=replace(RULE, channel="#private-ops"))
    rig.run_until(START + timedelta(hours=13))
    assert rig.store.undelivered() == []  # given up on, not retried forever
    rig.close()
    told = [m for m in slack.messages(CHANNEL) if "cannot be delivered" in (m.text or "")]
    assert len(told) == 1 and "not_in_channel" in told[0].text


def test_a_silence_holds_back_a_firing_and_its_reminders_and_expires(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock, rule=replace(RULE, remind_every=1200))
    rig.store.silence(
        "failed-job-rate",
        ("pro",),
        START + timedelta(hours=10, minutes=35),
        "deploy in progress",
        "U123",
        clock(),
    )
    rig.run_until(START + timedelta(hours=10, minutes=34))
    assert parents(slack) == []  # fired, reminded maybe, but silenced
    assert rig.store.alert_states()[("failed-job-rate", ("pro",))].status == "firing"
    rig.run_until(START + timedelta(hours=11, minutes=5))  # the silence has ended
    rig.close()
    (parent,) = parents(slack)  # told once the silence ended, still one thread
    assert "pro" in parent.text


def test_button_clicks_acknowledge_and_silence_and_the_parent_shows_it(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    import json
    import threading
    from urllib.parse import urlencode

    from bot.config import Settings
    from bot.server import make_server
    from tests.helpers import SECRET, signed

    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock)
    rig.run_until(START + timedelta(hours=10, minutes=30))
    rig.close()
    (parent,) = parents(slack)
    buttons = [b for b in parent.blocks if b["type"] == "actions"][0]["elements"]
    assert [e["action_id"] for e in buttons][:3] == [
        "usage_ack",
        "usage_silence_1h",
        "usage_silence_24h",
    ]
    settings = Settings(
        db_path=str(tmp_path / "bot.db"),
        slack_signing_secret=SECRET,
        slack_bot_token="xoxb-test",
        slack_api_url=slack.url,
        port=0,
    )
    server = make_server(settings, "127.0.0.1")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/slack/interactivity"
    try:
        with httpx.Client(timeout=5) as http:
            for element in buttons[:2]:
                message = slack.messages(CHANNEL)[0]
                payload = {
                    "type": "block_actions",
                    "user": {"id": "U123"},
                    "channel": {"id": message.channel},
                    "container": {"channel_id": message.channel, "message_ts": message.ts},
                    "message": {"ts": message.ts, "text": message.text, "blocks": message.blocks},
                    "actions": [{"action_id": element["action_id"], "value": element["value"]}],
                }
                body = urlencode({"payload": json.dumps(payload)}).encode()
                answer = http.post(url, content=body, headers=signed(body))
                assert answer.status_code == 200, answer.text
            forged = http.post(
                url, content=body, headers={**signed(body), "X-Slack-Signature": "v0=00"}
            )
            assert forged.status_code == 401
    finally:
        server.shutdown()
        server.server_close()
    store = Store(tmp_path / "bot.db")
    assert store.acknowledgement("failed-job-rate", ("pro",))[0] == "U123"  # type: ignore[index]
    assert store.silenced("failed-job-rate", ("pro",), datetime.now(UTC))
    store.close()
    shown = str(slack.messages(CHANNEL)[0].blocks)
    assert "Silenced by <@U123>" in shown  # the latest note replaces the earlier one
    assert any(
        "Acknowledged by <@U123>" in str(r.blocks) for r in slack.messages(CHANNEL)[0].revisions
    )


def test_expected_and_noise_through_signed_http_are_recorded_and_shown_once(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], database: str | Path
) -> None:
    """Feedback per episode over `serve`'s /slack/interactivity: who and when recorded,
    the last click winning, one feedback line on the parent, kept by the resolve's edit
    (with the two buttons), and a click on the resolved parent taken too."""
    import json
    from urllib.parse import urlencode

    from bot.config import Settings
    from tests.helpers import SECRET, serve_app, signed

    sim, clock = world
    rig = Rig(database, slack, sim, clock)
    rig.run_until(START + timedelta(hours=10, minutes=30))
    (firing,) = [t for t in rig.store.transitions() if t.state == "firing"]
    assert firing.since is not None
    options = dict(slack_signing_secret=SECRET, slack_bot_token="xoxb-test", port=0)
    settings = (
        Settings(database_url=database, slack_api_url=slack.url, **options)  # type: ignore[arg-type]
        if isinstance(database, str)
        else Settings(db_path=str(database), slack_api_url=slack.url, **options)  # type: ignore[arg-type]
    )

    def click(http: httpx.Client, url: str, action_id: str, user: str, **headers: str) -> int:
        (parent,) = parents(slack)  # the parent as Slack holds it now
        buttons = [b for b in parent.blocks if b["type"] == "actions"][0]["elements"]
        value = next(e["value"] for e in buttons if e["action_id"] == action_id)
        payload = {
            "type": "block_actions",
            "user": {"id": user},
            "channel": {"id": parent.channel},
            "container": {"channel_id": parent.channel, "message_ts": parent.ts},
            "message": {"ts": parent.ts, "text": parent.text, "blocks": parent.blocks},
            "actions": [{"action_id": action_id, "value": value}],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return http.post(url, content=body, headers={**signed(body), **headers}).status_code

    def lines() -> list[str]:
        (parent,) = parents(slack)
        return [
            b["elements"][0]["text"] for b in parent.blocks if b.get("block_id") == "usage_feedback"
        ]

    key = ("failed-job-rate", ("pro",), firing.since)
    for base in serve_app(settings):
        url = f"{base}/slack/interactivity"
        with httpx.Client(timeout=5) as http:
            assert click(http, url, "usage_noise", "U1") == 200
            assert click(http, url, "usage_expected", "U2") == 200  # they disagree
            forged = click(http, url, "usage_noise", "U3", **{"X-Slack-Signature": "v0=00"})
            assert forged == 401
        said = rig.store.feedback(*key)
        assert said is not None and (said.verdict, said.verdict_by) == ("expected", "U2")
        assert said.verdict_at is not None and abs(datetime.now(UTC) - said.verdict_at) < timedelta(
            minutes=1
        )
        (shown,) = lines()  # one line: the latest verdict, with who gave it
        assert shown.startswith(":ballot_box_with_check: Marked expected by <@U2> at ")

        rig.run_until(START + timedelta(hours=13))  # the incident resolves
        (parent,) = parents(slack)
        assert "resolved after" in str(parent.blocks[0]) and lines() == [shown]
        with httpx.Client(timeout=5) as http:  # feedback after the fact
            assert click(http, url, "usage_noise", "U3") == 200
        (parent,) = parents(slack)
        assert "resolved after" in str(parent.blocks[0])
        (again,) = lines()
        assert again.startswith(":mute: Marked noise by <@U3> at ")
    said = rig.store.feedback(*key)
    assert said is not None and (said.verdict, said.verdict_by) == ("noise", "U3")
    rig.close()


def test_two_workers_on_one_database_post_each_alert_once(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], database: str | Path
) -> None:
    sim, clock = world
    first = Rig(database, slack, sim, clock)
    second = Rig(database, slack, sim, clock)  # a second dyno, or started by mistake
    turn = 0
    while clock() < START + timedelta(hours=13):
        clock.advance(timedelta(minutes=2))
        turn += 1
        order = (first, second) if turn % 2 else (second, first)  # both meet fresh work
        for rig in order:
            rig.worker.tick()
    holders = {first.worker._had_lease, second.worker._had_lease}
    first.worker.close()  # a clean stop hands the lease over
    assert second.worker._hold_lease()  # at once, not after the lease would have lapsed
    assert second.worker._had_lease
    first.close()
    second.close()
    (parent,) = parents(slack)
    assert holders == {True, False}
    assert len([r for r in parent.replies if "Resolved" in (r.text or "")]) == 1


def test_a_slack_outage_during_an_incident_delivers_the_backlog_once_in_order(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock, rule=replace(RULE, remind_every=1200))
    slack.outage(True)  # Slack answers 503 to everything
    rig.run_until(START + timedelta(hours=13))  # the whole incident, fired, reminded, resolved
    assert parents(slack) == [] and len(rig.store.undelivered()) >= 3
    slack.outage(False)
    for _ in range(10):  # Slack is back; the backoff passes, cycles go on
        rig.wall.now += 900
        clock.advance(timedelta(minutes=2))
        rig.worker.tick()
    assert rig.store.undelivered() == []
    rig.close()
    (parent,) = parents(slack)
    texts = [r.text or "" for r in parent.replies]
    told = [t for t in texts if "Still firing" in t or "Resolved" in t]
    assert told[-1].startswith(":white_check_mark: Resolved")  # in order: the resolve is last
    assert sum("Resolved" in t for t in texts) == 1 and parent.edited


def test_an_acknowledged_alert_gets_no_more_reminders(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock, rule=replace(RULE, remind_every=1200))
    rig.run_until(START + timedelta(hours=10, minutes=20))
    assert rig.store.acknowledge("failed-job-rate", ("pro",), "U123", clock())
    rig.run_until(START + timedelta(hours=11, minutes=30))
    rig.close()
    (parent,) = parents(slack)
    assert not [r for r in parent.replies if "Still firing" in (r.text or "")]
