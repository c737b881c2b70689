"""An outage on every model, told as one incident, across a SIGKILL and a restart on a
fresh database: `usage-bot run` (the console script's code path, `bot.cli.main(["run"])`,
with only its clock compressed) against the simulator over HTTP and the Slack stand-in.

The first worker tells the incident (one parent, a details reply per model) and is
killed; the second starts on an empty database (a dyno that lost its disk, or a new
PostgreSQL database), takes the incident back from the parent's metadata and resolves
it in the same thread: one parent, each model told once and resolved once.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.notify import EVENT_TYPE
from bot.rules import default_rules_text
from bot.standins import postgres
from bot.standins.simulator import Incident, Simulator
from bot.standins.slack import Message, SlackStandIn

DATA_START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday morning
# Data seconds per real second. At 300 jobs an hour the API's newest 100 events reach
# back about 7 data minutes (2.3 s real): far more than a cycle takes.
SPEED = 180.0
OUTAGE = Incident(
    "failure_spike",
    DATA_START + timedelta(minutes=5),
    DATA_START + timedelta(minutes=20),
    failure_rate=0.6,
)
MODELS = {"human", "light", "original", "pro"}
DATA_END = DATA_START + timedelta(hours=1)  # every model fired by 09:20, resolved by 09:50
CHANNEL = "#usage-alerts"


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_an_outage_is_one_incident_across_a_sigkill_and_a_fresh_database(
    engine: str, tmp_path: Path
) -> None:
    origin = time.time()  # real time at DATA_START; the children compute the same clock

    def data_clock() -> datetime:
        return DATA_START + timedelta(seconds=(time.time() - origin) * SPEED)

    # The default rules, with failure rates judged over 5 minutes instead of 15, so that
    # the incident fires and resolves within half a minute of real time.
    failure_rule = "name: failed-job-rate\n    metric: failure_rate\n    group_by: [model]\n"
    rules = default_rules_text()
    assert rules.count(failure_rule + "    bucket: 15m\n") == 1
    rules = rules.replace(failure_rule + "    bucket: 15m\n", failure_rule + "    bucket: 5m\n")
    (tmp_path / "rules.yaml").write_text(rules)
    if engine == "postgres":
        first_db, second_db = (
            postgres.create_database(os.environ["TEST_DATABASE_URL"]) for _ in range(2)
        )
    else:
        first_db, second_db = str(tmp_path / "first.db"), str(tmp_path / "second.db")
    sim = Simulator(start=DATA_START, clock=data_clock, jobs_per_hour=300, incidents=[OUTAGE])
    errors = tmp_path / "stderr.txt"
    with sim.serve() as api, SlackStandIn() as slack, errors.open("ab") as stderr:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "USAGE_", "BOT_"))
        }
        env.pop("DATABASE_URL", None)
        env.update(
            USAGE_API_BASE_URL=api.url,
            USAGE_API_KEY="sim-key",
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_API_URL=slack.url,
            SLACK_CHANNEL=CHANNEL,
            BOT_POLL_SECONDS="0.02",
            LOG_LEVEL="WARNING",
        )

        def start(db: str, until: datetime | None = None) -> subprocess.Popen[bytes]:
            where = {"DATABASE_URL": db} if engine == "postgres" else {"BOT_DB_PATH": db}
            args = [sys.executable, __file__, str(origin)]
            return subprocess.Popen(
                args + ([until.isoformat()] if until else []),
                env={**env, **where},
                cwd=tmp_path,  # reads rules.yaml from here
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

        first = start(first_db)
        deadline = time.monotonic() + 60
        while not _all_told(slack):  # the parent, and every model's details in its thread
            assert time.monotonic() < deadline and first.poll() is None, errors.read_text()
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        (parent,) = _parents(slack)
        assert _payload(parent)["state"] == "firing"  # killed in the middle of the incident

        second = start(second_db, until=DATA_END)  # an empty database
        assert second.wait(timeout=90) == 0, errors.read_text()[-2000:]
        messages = slack.messages(CHANNEL)
    log = errors.read_text()
    assert "Traceback" not in log, log[-2000:]
    assert log.count("adopted the open alert failed-job-rate") == 4  # from the metadata
    (parent,) = (m for m in messages if m.event_type == EVENT_TYPE)
    told = _replies(parent)
    expected = {("failed-job-rate", (model,)) for model in MODELS}
    assert {(m["rule"], tuple(m["group"])) for m in _payload(parent)["members"]} == expected
    assert told == Counter({("details", key): 1 for key in expected}) + Counter(
        {("resolve", key): 1 for key in expected}
    )
    assert _payload(parent)["state"] == "resolved" and "resolved after" in str(parent.blocks)


def _parents(slack: SlackStandIn) -> list[Message]:
    return [m for m in slack.messages(CHANNEL) if m.event_type == EVENT_TYPE]


def _payload(message: Message) -> dict:  # type: ignore[type-arg]
    return message.metadata["event_payload"] if message.metadata else {}


def _replies(parent: Message) -> Counter[tuple[str, tuple[str, tuple[str, ...]]]]:
    return Counter(
        (_payload(r)["role"], (_payload(r)["rule"], tuple(_payload(r)["group"])))
        for r in parent.replies
        if r.metadata
    )


def _all_told(slack: SlackStandIn) -> bool:
    parents = _parents(slack)
    if len(parents) != 1:
        return False
    listed = {tuple(m["group"]) for m in _payload(parents[0])["members"]}
    details = {key[1] for role, key in _replies(parents[0]) if role == "details"}
    return listed == {(m,) for m in MODELS} and details == listed


def _child(origin: float, until: str | None) -> int:
    """`usage-bot run` with data time compressed; the clean run SIGTERMs itself once data
    time reaches `until` (and a few cycles have run)."""
    from bot import cli
    from bot import worker as worker_module
    from bot.worker import Worker

    def data_clock() -> datetime:
        return DATA_START + timedelta(seconds=(time.time() - origin) * SPEED)

    # cli imports the worker when `run` starts, so the clock goes in where it looks.
    worker_module.Worker = functools.partial(Worker, clock=data_clock)  # type: ignore[misc]
    if until is not None:
        end = datetime.fromisoformat(until)

        def stop_later() -> None:
            while data_clock() < end or signal.getsignal(signal.SIGTERM) in (
                signal.SIG_DFL,
                None,
            ):
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=stop_later, daemon=True).start()
    return cli.main(["run"])


if __name__ == "__main__":
    sys.exit(_child(float(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
