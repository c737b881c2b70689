"""`usage-bot demo`, the README's first command, as a user runs it: a subprocess, briefly.

At 1,200 data seconds a second, 11 seconds reach 11:40 data time: the scripted `pro`
failure spike (09:00-10:00) has fired and resolved (about 11:00). The printed channel
must show the alert's parent with request_ids and job_ids of failed `pro` jobs that the
demo's simulator really produced (rebuilt here: its traffic is a pure function of the
seed and the minute), the thread's resolve and the parent's edit.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from bot.demo import DEMO_START
from bot.standins.simulator import ManualClock, Simulator, demo_incidents

SECONDS, SPEED = 11, 1200
DETAIL = re.compile(r"• (req_[0-9a-f]+) · job (job_[0-9a-f]+) · pro · ")


def test_the_demo_fires_an_alert_on_real_failed_jobs_and_resolves_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--seconds", str(SECONDS), "--speed", str(SPEED)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    channel = done.stdout.partition("── Slack #usage-alerts")[2]
    assert channel, done.stdout[-2000:]
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
    assert "(parent edited:)" in thread and "failed-job-rate for model pro resolved" in thread
