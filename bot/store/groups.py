"""Incidents in the store: the alert keys told under one Slack parent (`bot.grouping`
plans them, `notify.slack` tells them), a member row per key with the figures it fired
with and the transitions routed to it.

Part of `bot.store`: `GroupsMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from bot.models import FIRING, AlertGroup, AlertState, GroupMember, Thread, format_time, parse_time

from .alerts import state_row
from .connection import Connection, translated


class GroupsMixin(Connection):
    def save_groups(self, groups: Iterable[AlertGroup]) -> None:
        """Incidents as a plan left them, each with all its members, in one transaction
        (before anything of them is told)."""
        groups = list(groups)
        if not groups:
            return
        with translated("saving incidents"), self._atomic():
            for group in groups:
                self._write_group(group)

    def groups_for(self, transition_ids: Sequence[int]) -> list[AlertGroup]:
        """The incidents still firing, and those any of these transitions was routed to."""
        sql = (
            "select distinct group_id from alert_group_members "
            "where fired_tid in ({0}) or resolved_tid in ({0})"
        )
        ids: set[str] = set()
        with translated("reading incidents"):
            for chunk in _chunks(list(transition_ids), 400):
                marks = ", ".join("?" * len(chunk))
                rows = self.db.execute(sql.format(marks), [*chunk, *chunk]).fetchall()
                ids.update(str(row[0]) for row in rows)
            rows = self.db.execute(
                "select id from alert_groups where status = ?", [FIRING]
            ).fetchall()
            ids.update(str(row[0]) for row in rows)
        return self._groups(sorted(ids))

    def open_groups(self) -> list[AlertGroup]:
        return self.groups_for([])

    def group(self, group_id: str) -> AlertGroup | None:
        found = self._groups([group_id])
        return found[0] if found else None

    def route(self, transition_id: int) -> AlertGroup | None:
        """The incident a transition was routed to (None: not routed)."""
        with translated("reading incidents"):
            row = self.db.execute(
                "select group_id from alert_group_members where fired_tid = ? or resolved_tid = ?",
                [transition_id, transition_id],
            ).fetchone()
        return self.group(str(row[0])) if row else None

    def thread_keys(self, rule: str, group: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
        """The alert keys still open in the thread of this one (an incident's keys share
        their parent); at least the key itself."""
        key = [rule, json.dumps(list(group))]
        sql = (
            "select rule, group_key from alert_threads where status = 'open' "
            "and ts = (select ts from alert_threads where rule = ? and group_key = ?) "
            "and channel = (select channel from alert_threads where rule = ? and group_key = ?) "
            "order by rule, group_key"
        )
        with translated("reading alert threads"):
            rows = self.db.execute(sql, [*key, *key]).fetchall()
        found = [(str(r[0]), tuple(json.loads(r[1]))) for r in rows]
        return found if (rule, group) in found else [(rule, group), *found]

    def group_posted(self, group_id: str, channel: str, ts: str) -> None:
        """Its parent is in Slack: where."""
        with translated("saving an incident"), self._atomic():
            self.db.execute(
                "update alert_groups set thread_channel = ?, ts = ? where id = ?",
                [channel, ts, group_id],
            )

    def adopt_group(
        self, group: AlertGroup, threads: Iterable[Thread], states: Iterable[AlertState]
    ) -> None:
        """An incident found firing in Slack on a fresh database: it, its members' threads
        and the alert states of the keys still firing."""
        with translated("adopting an incident"), self._atomic():
            self._write_group(group)
            for thread in threads:
                self.db.upsert_all(
                    "alert_threads",
                    [
                        {
                            "rule": thread.rule,
                            "group_key": json.dumps(list(thread.group)),
                            "channel": thread.channel,
                            "ts": thread.ts,
                            "status": thread.status,
                            "opened_at": format_time(group.opened_at),
                            "acked_by": None,
                            "acked_at": None,
                        }
                    ],
                    pk=("rule", "group_key"),
                )
            self.db.upsert_all(
                "alert_states", [state_row(s) for s in states], pk=("rule", "group_key")
            )

    # -- rows ----------------------------------------------------------------------------

    def _write_group(self, group: AlertGroup) -> None:
        self.db.upsert_all("alert_groups", [_group_row(group)], pk="id")
        self.db.execute("delete from alert_group_members where group_id = ?", [group.id])
        self.db.insert_all(
            "alert_group_members",
            (_member_row(group.id, i, m) for i, m in enumerate(group.members)),
        )

    def _groups(self, ids: Sequence[str]) -> list[AlertGroup]:
        if not ids:
            return []
        found: dict[str, dict[str, Any]] = {}
        members: dict[str, list[GroupMember]] = {}
        with translated("reading incidents"):
            for chunk in _chunks(list(ids), 400):
                marks = ", ".join("?" * len(chunk))
                for row in self.db.query(
                    f"select * from alert_groups where id in ({marks})", chunk
                ):
                    found[row["id"]] = row
                sql = (
                    f"select * from alert_group_members where group_id in ({marks}) "
                    'order by group_id, "position"'
                )
                for row in self.db.query(sql, chunk):
                    members.setdefault(row["group_id"], []).append(_member(row))
        return [_group(found[i], members.get(i, [])) for i in ids if i in found]


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or []


def _group_row(group: AlertGroup) -> dict[str, Any]:
    return {
        "id": group.id,
        "partition": group.partition,
        "channel": group.channel,
        "status": group.status,
        "opened_at": format_time(group.opened_at),
        "updated_at": format_time(group.updated_at),
        "opened_by": group.opened_by,
        "thread_channel": group.thread_channel,
        "ts": group.ts,
    }


def _member_row(group_id: str, position: int, m: GroupMember) -> dict[str, Any]:
    return {
        "group_id": group_id,
        "position": position,
        "rule": m.rule,
        "group_key": json.dumps(list(m.group)),
        "group_by": json.dumps(list(m.group_by)),
        "metric": m.metric,
        "state": m.state,
        "how": m.how,
        "since": format_time(m.since),
        "at": format_time(m.at),
        "value": m.value,
        "baseline": m.baseline,
        "zscore": m.zscore,
        "fired_tid": m.fired_tid,
        "resolved_at": format_time(m.resolved_at) if m.resolved_at else None,
        "resolved_tid": m.resolved_tid,
    }


def _group(row: dict[str, Any], members: list[GroupMember]) -> AlertGroup:
    return AlertGroup(
        id=row["id"],
        partition=row["partition"],
        channel=row["channel"],
        status=row["status"],
        opened_at=parse_time(row["opened_at"]),
        updated_at=parse_time(row["updated_at"]),
        members=tuple(members),
        opened_by=row["opened_by"],
        thread_channel=row["thread_channel"],
        ts=row["ts"],
    )


def _member(row: dict[str, Any]) -> GroupMember:
    return GroupMember(
        rule=row["rule"],
        group=tuple(json.loads(row["group_key"])),
        group_by=tuple(json.loads(row["group_by"])),
        metric=row["metric"],
        state=row["state"],
        how=row["how"],
        since=parse_time(row["since"]),
        at=parse_time(row["at"]),
        value=row["value"],
        baseline=row["baseline"],
        zscore=row["zscore"],
        fired_tid=row["fired_tid"],
        resolved_at=parse_time(row["resolved_at"]) if row["resolved_at"] else None,
        resolved_tid=row["resolved_tid"],
    )
