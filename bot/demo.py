"""`usage-bot demo`: the whole job on embedded defaults, in under a minute.

Serves the simulator on a free loopback port with a compressed clock and a scripted
incident, runs the real worker against it over HTTP on a temporary database, delivers the
alerts with the real Slack client to the local Slack stand-in, and prints the channel as
it reads in Slack, with the charts saved to a folder it names.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from bot import chart
from bot.commands import events_text, summary_text
from bot.logs import configure as configure_logging
from bot.messages import describe_key
from bot.models import Budget, Event, EventsPage, Summary, Transition
from bot.notify import SlackNotifier, make_web_clients
from bot.rules import default_rules_text, parse_rules
from bot.source import UsageClient, make_http_client
from bot.standins.simulator import CompressedClock, Incident, Simulator, demo_incidents
from bot.standins.slack import SlackStandIn
from bot.store import Store
from bot.worker import TickReport, Worker, run

DEMO_START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # a Monday morning, data time
DEMO_KEY = "demo-key"
CHANNEL = "#usage-alerts"
SLACK_TOKEN = "xoxb-demo-token"
SEEDED_HISTORY = timedelta(days=4)  # spend baselines need a day per phase, seasons three
POLL_SECONDS = 0.1  # real seconds between cycles
# A monthly budget the pro model has used 83% of by the demo's Monday: its thresholds and
# its forecast (the month ends near 8.5M credits) are told as the demo starts.
DEMO_BUDGET = Budget(
    "pro-monthly", 7_500_000.0, scope=(("model", "pro"),), credit_price=0.001, currency="USD"
)


def run_demo(seconds: float = 33.0, speed: float = 600.0, out: TextIO = sys.stdout) -> int:
    """Run the scripted incident for `seconds` of real time at `speed` data-seconds/second."""
    configure_logging("WARNING", "text")
    ruleset = parse_rules(default_rules_text(), "<embedded default rules>")
    ruleset = replace(ruleset, budgets=(DEMO_BUDGET,))

    say = _printer(out)
    clock = CompressedClock(DEMO_START, speed)
    sim = Simulator(
        start=DEMO_START - SEEDED_HISTORY,
        clock=clock,
        seed=7,
        jobs_per_hour=300.0,
        incidents=demo_incidents(DEMO_START),
        api_key=DEMO_KEY,
    )
    with (
        tempfile.TemporaryDirectory(prefix="usage-bot-demo-") as tmp,
        sim.serve() as server,
        SlackStandIn(token=SLACK_TOKEN) as slack,
    ):
        db_path = Path(tmp) / "demo.db"
        say(f"usage-bot demo: simulated usage API on {server.url}, database {db_path}")
        say(f"data clock runs {speed:.0f}x real time from {DEMO_START:%a %Y-%m-%d %H:%M} UTC")
        for incident in sim.incidents:
            window = f"{incident.start:%H:%M}-{incident.end:%H:%M}"
            model = incident.model or "every model"
            say(f"  scripted: {incident.kind.replace('_', ' ')} on {model} {window}")
        store = Store(db_path)
        seeded = _seed_history(store, sim, clock)
        say(f"  the bot has watched this account for 4 days: {seeded:,} events seeded")
        stop = threading.Event()
        timer = threading.Timer(seconds, stop.set)
        timer.start()
        started = time.monotonic()
        try:
            with make_http_client(server.url) as http:
                client = UsageClient(http, api_key=DEMO_KEY, sleep=stop.wait, backoff_base=0.05)
                reader, poster = make_web_clients(SLACK_TOKEN, slack.url, timeout=5)
                notifier = SlackNotifier(
                    reader=reader,
                    poster=poster,
                    store=store,
                    rules={rule.name: rule for rule in ruleset.rules},
                    default_channel=CHANNEL,
                    mention=ruleset.mention,
                    inhibit=ruleset.inhibit,
                )
                worker = Worker(
                    client=client, store=store, ruleset=ruleset, clock=clock, notifier=notifier
                )
                worker.prepare(DEMO_START)
                chart.warm()  # the first alert's chart would stall a cycle for minutes of data
                clock.restart()  # data time starts now, not while history was loaded
                progress = _Progress(say, sim.incidents, speed)
                cycles = run(worker, every=POLL_SECONDS, stop=stop, on_tick=progress.tick(clock))
            now = clock()
            say("")
            say(
                f"{cycles} cycles in {time.monotonic() - started:.1f}s real time; "
                f"{store.count_events():,} events stored, {len(store.gaps())} gaps"
            )
            say("")
            say(_channel_as_text(slack, CHANNEL))
            charts = _save_charts(slack)
            if charts is not None:
                say(f"charts of the alerts (PNG, as uploaded to the threads): {charts}")
            say("")
            say(summary_text(store, 7, now))
            say("")
            say(events_text(store, 5, now))
        finally:
            timer.cancel()
            store.close()
    return 0


def _seed_history(store: Store, sim: Simulator, clock: CompressedClock) -> int:
    """Store a week of the simulator's events and its 90-day summary, as if the worker had
    been running: the spend baselines need a day or more of events to judge at all."""
    items = sim.events_until(DEMO_START)  # also warms the simulator's traffic cache
    events = tuple(Event.from_api(item) for item in reversed(items))
    store.save_events(EventsPage(limit=len(events) + 1, items=events), stored_at=DEMO_START)
    clock.restart()  # the summary is read at the start of the data clock
    store.save_summary(Summary.from_api(sim.summary(90)), polled_at=DEMO_START)
    return len(events)


def _channel_as_text(slack: SlackStandIn, channel: str) -> str:
    """The channel as it reads in Slack: each parent as first posted, its thread, and the
    edit made on resolve."""
    lines = [f"── Slack {channel} " + "─" * 60]
    for message in slack.messages(channel):
        first = message.revisions[0] if message.revisions else None
        lines += _blocks_as_text(first.blocks if first else message.blocks, message.text)
        for reply in message.replies:
            for name in (str(f.get("name")) for f in reply.files):
                lines.append(f"    ↳ [chart {name}]")
            if reply.text and not reply.files:
                body = _blocks_as_text(reply.blocks, reply.text)
                lines += ["    ↳ " + body[0]] + ["      " + line for line in body[1:]]
        if message.edited:
            final = _blocks_as_text(message.blocks, message.text)
            if len((message.metadata or {}).get("event_payload", {}).get("members") or ()) > 1:
                # An incident of several keys: the parent as it ends, every key listed.
                lines += ["  (parent edited:) " + final[0], *("  " + line for line in final[1:])]
            else:
                lines.append("  (parent edited:) " + final[0])
        lines.append("")
    return "\n".join(lines).rstrip()


def _blocks_as_text(blocks: list[Any] | None, fallback: str) -> list[str]:
    """Block Kit sections and contexts as plain lines (mrkdwn marks dropped)."""
    texts = []
    for block in blocks or []:
        if block.get("type") == "section":
            texts.append(block["text"]["text"])
        elif block.get("type") == "context":
            texts.extend(element.get("text", "") for element in block.get("elements", []))
        elif block.get("type") == "actions":
            labels = [e.get("text", {}).get("text", "") for e in block.get("elements", [])]
            texts.append("  ".join(f"[{label}]" for label in labels))
    text = "\n".join(texts) or fallback
    return [line.replace("*", "").replace("`", "") for line in text.splitlines()]


def _save_charts(slack: SlackStandIn) -> Path | None:
    files = [f for f in slack.files if f.content]
    if not files:
        return None
    folder = Path(tempfile.mkdtemp(prefix="usage-bot-demo-charts-"))
    for file in files:
        (folder / file.name).write_bytes(file.content or b"")
    return folder


class _Progress:
    """Prints one line per simulated half hour (events seen, failures per model), and
    each alert as it fires, with how long after its scripted onset."""

    def __init__(
        self, say: Callable[[str], None], incidents: Sequence[Incident], speed: float
    ) -> None:
        self.say = say
        self.incidents = incidents
        self.speed = speed
        self.period_start: datetime | None = None
        self.events = 0
        self.failed: dict[str, int] = {}
        self.errors = 0

    def tick(self, clock: CompressedClock) -> Callable[[TickReport], None]:
        def on_tick(report: TickReport) -> None:
            now = clock()
            if self.period_start is None:
                self.period_start = now
            for t in report.fired:
                self.say(f"[{t.at:%H:%M:%S}] firing: {describe_key(t)}{self._since_onset(t)}")
            if report.delivered:
                self.say(f"[{now:%H:%M}] {report.delivered} alert message(s) delivered to Slack")
            self.events += report.new_events
            self.errors += len(report.errors)
            for model, count in report.failed_by_model.items():
                self.failed[model] = self.failed.get(model, 0) + count
            if now - self.period_start >= timedelta(minutes=30):
                failed = ", ".join(f"{m} {n}" for m, n in sorted(self.failed.items())) or "none"
                errors = f"  poll errors {self.errors}" if self.errors else ""
                self.say(f"[{now:%H:%M}] +{self.events:4d} events  failed jobs: {failed}{errors}")
                self.period_start, self.events, self.failed, self.errors = now, 0, {}, 0

        return on_tick

    def _since_onset(self, t: Transition) -> str:
        """', 52 s of data after the scripted onset (0.09 s real)' for the incident the
        alert is about, if one of the script's is running."""
        model = dict(zip(t.group_by, t.group, strict=False)).get("model")
        for incident in self.incidents:
            if incident.start <= t.at <= incident.end and incident.model in (None, model):
                lag = (t.at - incident.start).total_seconds()
                spent = _duration(lag)
                return f", {spent} of data after the scripted onset ({lag / self.speed:.2f} s real)"
        return ""


def _duration(seconds: float) -> str:
    # Whole seconds cut, not rounded, as the clock beside it prints them: 13 min 59.6 s
    # after a 09:00 onset is [09:13:59] and "13 min 59 s", not "14 min 0 s".
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _printer(out: TextIO) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    return say
