"""Crash anywhere, lose nothing, tell everything once: a real worker process is SIGKILLed
at random moments, restarted each time, and at the end every alert key has exactly one
parent, one details reply and one resolve.

The first test kills `usage-bot run` while it delivers a backlog of alerts to Slack, on
SQLite and on PostgreSQL (the `database` fixture). The
second kills it while it polls, stores and judges a live incident: the same `usage-bot run`
code path (`bot.cli.main(["run"])`) with only its clock compressed, so that data time
moves 240 times faster than real time and every second holds several judging steps.
"""

from __future__ import annotations

import mmap
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.models import parse_time
from bot.notify import EVENT_TYPE
from bot.rules import default_rules_text
from bot.standins.simulator import Incident, Simulator
from bot.standins.slack import Message, SlackStandIn
from bot.store import Store

# Both tests time their kills against busy child processes: under `-n`, they share one
# worker (pyproject's --dist loadfile), so they never run against each other.
KILLS = 30


def test_random_sigkills_neither_lose_nor_duplicate_a_message(database: str | Path) -> None:
    # Imported here: this file is also the second test's child script, run without `tests`.
    from tests.helpers import KEYS, second_looks, seed_backlog

    rng = random.Random(20261129)
    now = datetime.now(UTC)
    began = now.timestamp()
    db = database
    seed_backlog(db, now)
    sim = Simulator(start=now - timedelta(hours=3), jobs_per_hour=120)
    with sim.serve() as api, SlackStandIn() as slack:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "USAGE_", "BOT_"))
        }
        env.update(
            USAGE_API_BASE_URL=api.url,
            USAGE_API_KEY="sim-key",
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_API_URL=slack.url,
            SLACK_CHANNEL="#usage-alerts",
            BOT_POLL_SECONDS="0.05",
            LOG_LEVEL="WARNING",
        )
        env.pop("DATABASE_URL", None)
        env["DATABASE_URL" if isinstance(db, str) else "BOT_DB_PATH"] = str(db)
        kills = aimed = 0
        for life in range(KILLS + 20):
            calls, polls = len(slack.requests), len(sim.requests)
            pending = _undelivered(db)
            # Every third life while the outbox is not empty is aimed: Slack stores the
            # life's first post and holds back the answer, and the kill falls while the
            # worker waits for it, between the post and its record, however loaded the
            # machine. The next life must find that post, not post it again.
            aim = life % 3 == 0 and pending > 0
            if aim:
                slack.timeout("chat.postMessage", seconds=3.0, commit=True)
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # Start-up takes 0.6 s or more (longer on a loaded machine), and a life takes
            # over delivery once the last one's lease (1 s) has lapsed: wait until this
            # life is at work (its first call to Slack, or to the API once nothing is left
            # to deliver), not a fixed time.
            deadline = time.monotonic() + 30
            while len(slack.requests) == calls and (pending or len(sim.requests) == polls):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.002)
            if aim:
                while slack.pending_faults() and proc.poll() is None:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.002)
                aimed += not slack.pending_faults()
                slack.clear_faults()
            else:
                time.sleep(rng.uniform(0.0, 0.4))  # anywhere in delivery, or idle after it
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=10)
            if kills >= KILLS and not _undelivered(db):
                break
        # A last clean run delivers whatever the final kill left behind.
        done = subprocess.run(
            [sys.executable, "-m", "bot", "run", "--cycles", "3"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-1500:]
        messages = slack.messages("#usage-alerts")
        # Look-ups for a step attempted but never recorded (not the cold start's scan).
        looks = second_looks(slack, began - 2 * 3600)
    assert kills >= KILLS and aimed >= 1
    assert looks, "no kill fell between a post and its record"
    assert _undelivered(db) == 0
    by_key = _one_thread_per_key(messages)
    assert sorted(k[0] for k in by_key) == KEYS
    # Each key fired while the one before still fired: one incident, across every kill.
    assert len({parent.ts for parent in by_key.values()}) == 1
    store = Store(db)
    assert store.integrity_ok()
    store.close()


def _one_thread_per_key(messages: list[Message]) -> dict[tuple[str, ...], Message]:
    """Every alert key is told in one incident: listed on one parent (ops notices carry
    metadata too: only alert parents count; keys that fire together share one), with one
    details reply and one resolve reply for it in that thread; every parent was edited
    to say it resolved. The parent of each key."""
    by_key: dict[tuple[str, ...], Message] = {}
    for parent in (m for m in messages if m.event_type == EVENT_TYPE):
        payload = parent.metadata["event_payload"]
        members = [tuple(m["group"]) for m in payload["members"]]
        for key in members:
            assert key not in by_key, f"second parent for {key}"
            by_key[key] = parent
        replies = Counter(
            (r.metadata["event_payload"]["role"], tuple(r.metadata["event_payload"]["group"]))
            for r in parent.replies
            if r.metadata
        )
        for key in members:
            assert replies[("details", key)] == 1, (key, replies)
            assert replies[("resolve", key)] == 1, (key, replies)
        assert parent.edited and payload["state"] == "resolved"
    return by_key


def _told_in_order(messages: list[Message]) -> list[tuple[str, ...]]:
    """The keys in the order their details were told, across every incident's thread."""
    details = [
        (float(r.ts), tuple(r.metadata["event_payload"]["group"]))
        for m in messages
        if m.event_type == EVENT_TYPE
        for r in m.replies
        if r.metadata and r.metadata["event_payload"]["role"] == "details"
    ]
    return [key for _, key in sorted(details)]


def _undelivered(db: str | Path) -> int:
    store = Store(db)
    try:
        return sum(1 for _ in store.undelivered())
    finally:
        store.close()


# -- kills while it polls, stores and judges ------------------------------------------------

DATA_START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday morning
# Data seconds per real second: a 5-minute judging step every 2.5 s. At 150 jobs an hour
# the API's newest 100 events reach back about 14 data minutes (7 s real): several times
# what a restart takes (1 to 2.5 s), so no kill makes the bot miss an event (it would
# record a gap, and the test would fail).
SPEED = 120.0
INCIDENTS = [  # two models fail in turn; both fire, then resolve, while kills go on
    Incident(
        "failure_spike",
        DATA_START,
        DATA_START + timedelta(minutes=15),
        model="original",
        failure_rate=0.6,
    ),
    Incident(
        "failure_spike",
        DATA_START + timedelta(minutes=10),
        DATA_START + timedelta(minutes=25),
        model="light",
        failure_rate=0.6,
    ),
]
# Both fire (about 09:05 and 09:20) and resolve (about 09:45 and 09:55) by then.
DATA_END = DATA_START + timedelta(minutes=65)
STAGE_KILLS = 20
# A kill waits until the child is inside the drawn stage, then a few milliseconds more.
TARGETS = ("poll", "store", "evaluate", "save-decisions", "anywhere")
STAGE_FILE_SIZE = 64


def test_sigkills_while_polling_storing_and_judging_lose_and_double_nothing(
    tmp_path: Path,
) -> None:
    rng = random.Random(20261130)
    origin = time.time()  # real time at DATA_START; the child computes the same clock

    def data_clock() -> datetime:
        return DATA_START + timedelta(seconds=(time.time() - origin) * SPEED)

    db = tmp_path / "bot.db"
    # The default rules, with failure rates judged over 5 minutes instead of 15 so that an
    # incident fires and resolves within a minute of real time.
    failure_rule = "name: failed-job-rate\n    metric: failure_rate\n    group_by: [model]\n"
    rules = default_rules_text()
    assert rules.count(failure_rule + "    bucket: 15m\n") == 1
    rules = rules.replace(failure_rule + "    bucket: 15m\n", failure_rule + "    bucket: 5m\n")
    (tmp_path / "rules.yaml").write_text(rules)
    stage_file = tmp_path / "stage"
    stage_file.write_bytes(b"\0" * STAGE_FILE_SIZE)
    sim = Simulator(start=DATA_START, clock=data_clock, jobs_per_hour=150, incidents=INCIDENTS)
    died_in: Counter[str] = Counter()
    errors = tmp_path / "stderr.txt"
    with (
        sim.serve() as api,
        SlackStandIn() as slack,
        errors.open("ab") as stderr,
        stage_file.open("r+b") as file,
        mmap.mmap(file.fileno(), STAGE_FILE_SIZE) as page,
    ):
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "USAGE_", "BOT_"))
        }
        env.update(
            USAGE_API_BASE_URL=api.url,
            USAGE_API_KEY="sim-key",
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_API_URL=slack.url,
            SLACK_CHANNEL="#usage-alerts",
            BOT_DB_PATH=str(db),
            BOT_POLL_SECONDS="0.02",  # cycles back to back: kills land in work, not sleep
            LOG_LEVEL="WARNING",
        )

        def start(until: datetime | None = None) -> subprocess.Popen[bytes]:
            page[:] = b"\0" * STAGE_FILE_SIZE
            args = [sys.executable, __file__, str(origin), str(stage_file)]
            return subprocess.Popen(
                args + ([until.isoformat()] if until else []),
                env=env,
                cwd=tmp_path,  # reads rules.yaml from here
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

        def stage() -> tuple[str, int]:
            """The stage the child is in, and how many cycles it has finished."""
            name, _, cycles = page[:].rstrip(b"\0").decode().partition(" ")
            return name or "start-up", int(cycles or 0)

        kills = 0
        while kills < STAGE_KILLS + 30 and not (
            kills >= STAGE_KILLS and _covered(died_in) and data_clock() > INCIDENTS[-1].end
        ):
            proc = start()
            # Aimed at the stages still short of kills, so that a busy machine (a kill that
            # lands late, in the next stage) costs more lives, not the coverage.
            target = rng.choice(_short_of(died_in) or TARGETS)
            deadline = time.monotonic() + 30  # every target comes round each cycle
            seen = 0
            while time.monotonic() < deadline and proc.poll() is None:
                # Armed once this life has stored a page: a worker that dies before it
                # stores anything for longer than the API's newest 100 events reach back
                # would miss events by necessity (and record a gap). Fired when the target
                # is seen twice running, so the kill falls inside a stage that takes a
                # while (judging at a 5-minute step, not the no-op between steps).
                now_in, finished = stage()
                seen = seen + 1 if finished and target in (now_in, "anywhere") else 0
                if seen >= 2:
                    break
                time.sleep(0.0002)
            time.sleep(rng.uniform(0.0, 0.001 if target != "anywhere" else 0.5))
            assert proc.poll() is None, errors.read_text()[-2000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
            died_in[stage()[0]] += 1
        # A last clean run catches up, judges and delivers, then stops on SIGTERM.
        final = start(until=max(DATA_END, data_clock() + timedelta(minutes=5)))
        assert final.wait(timeout=60) == 0, errors.read_text()[-2000:]
        messages = slack.messages("#usage-alerts")
    print(f"\n{kills} kills, the child was in: {dict(died_in.most_common())}")
    assert "Traceback" not in errors.read_text(), errors.read_text()[-2000:]
    assert kills >= STAGE_KILLS and _covered(died_in), died_in

    store = Store(db)
    try:
        # Every event the API produced after the first page's oldest second (a page may
        # cut a second in two) through the last poll is stored once; no page was ever
        # overrun while a worker was down.
        last_poll = parse_time(
            store.db.execute(
                "select max(started_at) from polls where endpoint = ? and status = 'ok'",
                ["/v1/usage/events"],
            ).fetchone()[0]
        )
        stored = {e.id: e.created_at for e in store.recent_events(100_000)}
        first = min(stored.values())
        produced = {
            item["id"]: parse_time(item["created_at"]) for item in sim.events_until(data_clock())
        }
        expected = {i for i, at in produced.items() if first < at <= last_poll}
        assert store.gaps() == []
        assert store.count_events() == len(stored) and set(stored) <= set(produced)
        assert {i for i, at in stored.items() if first < at <= last_poll} == expected
        # Every transition judged once, in order per key, and delivered.
        transitions = sorted(store.transitions(1000), key=lambda t: t.at)
        assert {t.rule for t in transitions} == {"failed-job-rate"}
        sequence: dict[tuple[str, ...], list[str]] = {}
        for t in transitions:
            sequence.setdefault(t.group, []).append(t.state)
        assert {("original",), ("light",)} <= set(sequence), sequence
        assert all(states == ["firing", "resolved"] for states in sequence.values()), sequence
        assert store.undelivered() == []
        firings = [t.group for t in transitions if t.state == "firing"]
        assert store.integrity_ok()
    finally:
        store.close()
    by_key = _one_thread_per_key(messages)
    assert set(by_key) == set(sequence)
    # Both spikes overlap: one incident, light joining it; told in the order they fired.
    assert len({id(parent) for parent in by_key.values()}) == 1
    assert _told_in_order(messages) == firings


COVERAGE = (  # stages where kills must fall, at least 5 in each group; the targets to aim at
    (("poll", "store"), ("poll", "store")),
    (("judge", "evaluate", "save-decisions"), ("evaluate", "save-decisions")),
)


def _covered(died_in: Counter[str]) -> bool:
    """Enough kills fell while it polled or stored and while it judged."""
    return not _short_of(died_in)


def _short_of(died_in: Counter[str]) -> tuple[str, ...]:
    """The targets of the stage groups that have had fewer than 5 kills so far."""
    return tuple(
        target
        for stages, targets in COVERAGE
        if sum(died_in[stage] for stage in stages) < 5
        for target in targets
    )


def _child(origin: float, stage_path: str, until: str | None) -> int:
    """`usage-bot run` with data time compressed, marking the stage it is in.

    The marks go to a shared memory page the test reads after each kill: where the kill
    fell. Nothing in `bot` changes; the wrappers only name what runs.
    """
    import functools
    import threading

    from bot import cli
    from bot import worker as worker_module
    from bot.monitor import Monitor
    from bot.source import UsageClient
    from bot.worker import Worker

    def data_clock() -> datetime:
        return DATA_START + timedelta(seconds=(time.time() - origin) * SPEED)

    with open(stage_path, "r+b") as file:
        page = mmap.mmap(file.fileno(), STAGE_FILE_SIZE)
    stack = ["idle"]
    cycles = [0]

    def mark() -> None:
        text = f"{stack[-1]} {cycles[0]}"
        page[:STAGE_FILE_SIZE] = text.encode().ljust(STAGE_FILE_SIZE, b"\0")

    def staged(name: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            stack.append(name)
            mark()
            try:
                return fn(*args, **kwargs)
            finally:
                cycles[0] += name == "cycle"
                stack.pop()
                mark()

        return wrapper

    stages: list[tuple[Any, str, str]] = [
        (Worker, "tick", "cycle"),
        (Worker, "prepare", "restore"),
        (UsageClient, "events", "poll"),
        (UsageClient, "summary", "poll"),
        (Store, "save_events", "store"),
        (Store, "save_summary", "store"),
        (Store, "log_poll", "store"),
        (Worker, "_detect", "judge"),
        (Monitor, "run", "evaluate"),
        (Store, "save_decisions", "save-decisions"),
        (worker_module, "deliver", "deliver"),
    ]
    for owner, attribute, name in stages:
        setattr(owner, attribute, staged(name, getattr(owner, attribute)))
    # cli imports the worker when `run` starts, so the clock goes in where it looks.
    worker_module.Worker = functools.partial(Worker, clock=data_clock)  # type: ignore[misc]
    if until is not None:  # the clean run: SIGTERM itself once data time gets there
        end = datetime.fromisoformat(until)

        def stop_later() -> None:
            # Once data time is there, a few cycles have run and the handler is in place.
            while (
                data_clock() < end
                or cycles[0] < 3
                or signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)
            ):
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=stop_later, daemon=True).start()
    mark()
    return cli.main(["run"])


if __name__ == "__main__":
    sys.exit(_child(float(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
