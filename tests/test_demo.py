"""`usage-bot demo`, the README's first command, as a user runs it: a subprocess, briefly.

At 600 data seconds a second (the default), 40 seconds reach 14:40 data time: the
scripted `pro` failure spike (09:00-10:00) has fired and resolved (about 11:00). The printed channel
must show the alert's parent with request_ids and job_ids of failed `pro` jobs that the
demo's simulator really produced (rebuilt here: its traffic is a pure function of the
seed and the minute), the thread's resolve and the parent's edit. The outage of every
model (12:00-12:15) is one thread: one parent, the models judged failing later joining it,
each resolved once, and the parent edited to list them, resolved.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from bot.demo import DEMO_START
from bot.standins.simulator import ManualClock, Simulator, demo_incidents

# To 14:40 (the 12:00 outage resolves by about 13:30) at the demo's own speed: at 1,200x a
# second of a loaded machine's lag was 20 minutes of data, and the firing came late.
SECONDS, SPEED = 40, 600
DETAIL = re.compile(r"• (req_[0-9a-f]+) · job (job_[0-9a-f]+) · pro · ")


def test_the_demo_fires_an_alert_on_real_failed_jobs_and_resolves_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--seconds", str(SECONDS), "--speed", str(SPEED)],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    channel = done.stdout.partition("── Slack #usage-alerts")[2]
    assert channel, done.stdout[-2000:]
    # Each firing is printed as it happens, with its delay after the scripted onset: the
    # pro spike (under a job a minute) is proven in about the jobs the evidence bound
    # needs, a quarter of an hour of data at most.
    told = re.search(
        r"^\[09:(\d\d):\d\d\] firing: failed-job-rate for model pro, (\d+) min \d+ s of data "
        r"after the scripted onset",
        done.stdout,
        re.MULTILINE,
    )
    assert told, done.stdout[:3000]
    assert int(told[1]) == int(told[2]) <= 20
    parent = channel.partition("failed-job-rate for model pro is firing")[2]
    assert parent, channel
    thread = parent.partition("\n\n")[0]  # the parent, its thread and its edit

    listed = re.search(r"request_ids: (req_[0-9a-f]+)", thread)
    details = DETAIL.findall(thread)
    assert listed and details, thread
    # The same traffic the demo served (seed 7, 300 jobs an hour, its scripted incidents).
    sim = Simulator(
        start=DEMO_START,
        clock=ManualClock(DEMO_START),
        seed=7,
        jobs_per_hour=300.0,
        incidents=demo_incidents(DEMO_START),
    )
    produced = {e["request_id"]: e for e in sim.events_until(DEMO_START + timedelta(hours=4))}
    assert listed[1] in produced
    for request_id, job_id in details:
        event = produced[request_id]
        assert (event["job_id"], event["model"], event["status"]) == (job_id, "pro", "failed")

    assert "Resolved at" in thread, thread
    # (A model failing by chance while pro's alert fires would join its incident.)
    assert re.search(r"\(parent edited:\) .*failed-job-rate (for model pro )?resolved", thread)

    # The outage of every model: one parent (the models judged failing after the first
    # join its thread; which step each is judged in depends on when each poll ran, and on
    # a loaded machine a quiet model's few failures may all fall in an events gap).
    heads = re.findall(r"^(?:<!here> )?:\w+: (.+) is firing$", channel, re.MULTILINE)
    assert heads[:2] == ["failed-job-rate for model pro", "spend-per-model for model light"]
    assert len(heads) == 3 and heads[2].startswith("failed-job-rate for "), done.stdout[-3000:]
    incident = channel.rpartition(f"{heads[2]} is firing")[2].partition("\n\n")[0]
    listed = re.search(r"resolved after .+ for (\d) models: (.+)$", incident, re.MULTILINE)
    assert listed, incident
    count, models = int(listed[1]), listed[2].split(", ")
    assert count == len(models) >= 3 and set(models) <= {"human", "light", "original", "pro"}
    joined = re.findall(r"failed-job-rate for model (\w+) joined at", incident)
    assert set(joined) <= set(models[1:])  # the first opened it; those a step later joined
    assert incident.count("↳ :white_check_mark:") == count, incident  # one resolve each
    assert f"All {count} resolved." in incident
    assert "(parent edited:) :white_check_mark: failed-job-rate resolved after" in incident


def test_the_delay_after_the_onset_is_cut_to_whole_seconds_as_the_clock_beside_it() -> None:
    from bot.demo import _duration

    assert _duration(839.6) == "13 min 59 s"  # printed beside [09:13:59]
    assert _duration(52.9) == "52 s"
