"""Incidents in the store, on SQLite and PostgreSQL: saved as a plan leaves them, found
by a transition routed to them, posted, adopted, pruned once resolved and old."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from bot.models import (
    FIRING,
    JOIN,
    OPEN,
    RESOLVED,
    AlertGroup,
    AlertState,
    GroupMember,
    Thread,
)
from bot.store import Store
from tests.helpers import T0


def member(model: str, tid: int | None, how: str = OPEN, state: str = FIRING) -> GroupMember:
    return GroupMember(
        rule="failed-job-rate",
        group=(model,),
        group_by=("model",),
        metric="failure_rate",
        state=state,
        how=how,
        since=T0,
        at=T0 + timedelta(minutes=5),
        value=0.41,
        baseline=0.02,
        zscore=7.5,
        fired_tid=tid,
    )


GROUP = AlertGroup(
    id="a1b2c3d4e5f6a7b8c9d0",
    partition="failed-job-rate",
    channel="#usage-alerts",
    status=FIRING,
    opened_at=T0,
    updated_at=T0 + timedelta(minutes=5),
    members=(member("pro", 1), member("light", 2), member("human", 3, JOIN)),
    opened_by=1,
)


def test_an_incident_is_saved_whole_and_found_by_its_transitions(store: Store) -> None:
    store.save_groups([GROUP])
    assert store.open_groups() == [GROUP]  # members in their order, figures as given
    assert store.route(3) == GROUP and store.route(9) is None
    store.group_posted(GROUP.id, "C0123ABCD", "1795400000.000100")
    posted = store.group(GROUP.id)
    assert posted is not None and (posted.thread_channel, posted.ts) == (
        "C0123ABCD",
        "1795400000.000100",
    )
    # The last resolve: no longer open, still found by the transitions routed to it.
    members = tuple(
        replace(m, state=RESOLVED, resolved_at=T0 + timedelta(hours=1), resolved_tid=10 + i)
        for i, m in enumerate(posted.members)
    )
    store.save_groups([replace(posted, status=RESOLVED, members=members)])
    assert store.open_groups() == []
    (found,) = store.groups_for([12, 99])
    assert found.status == RESOLVED and found.members[2].resolved_tid == 12
    assert store.route(12) == found


def test_adopting_an_incident_writes_its_threads_and_the_states_of_its_firing_keys(
    store: Store,
) -> None:
    adopted = replace(
        GROUP,
        members=tuple(replace(m, fired_tid=None) for m in GROUP.members),
        thread_channel="C0123ABCD",
        ts="1795400000.000100",
        opened_by=None,
    )
    threads = [
        Thread(m.rule, m.group, "C0123ABCD", "1795400000.000100", "open") for m in adopted.members
    ]
    states = [AlertState(m.rule, m.group, FIRING, 1, 0, m.since, m.zscore) for m in adopted.members]
    store.adopt_group(adopted, threads, states)
    assert store.open_groups() == [adopted]
    assert store.thread("failed-job-rate", ("human",)) == threads[2]
    assert store.alert_states()[("failed-job-rate", ("light",))].status == FIRING


def test_pruning_drops_resolved_incidents_older_than_the_logs(store: Store) -> None:
    old = replace(GROUP, id="old", status=RESOLVED, updated_at=T0 - timedelta(days=9))
    store.save_groups([old, GROUP])
    removed = store.prune(T0 - timedelta(days=30), T0 - timedelta(days=7))
    assert removed["alert_groups"] == 1 and removed["alert_group_members"] == 3
    assert store.group("old") is None and store.group(GROUP.id) == GROUP
