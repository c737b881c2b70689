"""Feedback on alert episodes in the store: the verdict of a parent's Expected / Noise
buttons (the last click wins) and the first acknowledgement, per episode (rule, group and
the episode's first breach); and the episodes themselves, from the transitions, with
per-rule figures for `query alerts --stats` and the digest.

Part of `bot.store`: `FeedbackMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from datetime import datetime
from typing import Any

from bot.models import EXPECTED, NOISE, Episode, Feedback, RuleStats, format_time, parse_time

from .connection import Connection, translated

EpisodeKey = tuple[str, str, str]  # rule, group_key, since (as stored)


class FeedbackMixin(Connection):
    def record_verdict(
        self,
        rule: str,
        group: tuple[str, ...],
        since: datetime,
        verdict: str,
        by: str,
        now: datetime,
    ) -> Feedback | None:
        """Mark one episode expected or noise: a later click replaces an earlier one,
        whoever made it. Returns the feedback as it stood before (None: none yet)."""
        with translated("recording feedback"), self._atomic():
            before = self.feedback(rule, group, since)
            self.db.upsert_all(
                "alert_feedback",
                [
                    {
                        "rule": rule,
                        "group_key": json.dumps(list(group)),
                        "since": format_time(since),
                        "verdict": verdict,
                        "verdict_by": by,
                        "verdict_at": format_time(now),
                    }
                ],
                pk=("rule", "group_key", "since"),
            )
        return before

    def record_ack(
        self, rule: str, group: tuple[str, ...], since: datetime, by: str, now: datetime
    ) -> None:
        """The episode's first acknowledgement (a later one changes nothing: the time to
        acknowledge is the first one's)."""
        sql = (
            "insert into alert_feedback (rule, group_key, since, acked_by, acked_at) "
            "values (?, ?, ?, ?, ?) on conflict (rule, group_key, since) do update set "
            "acked_by = excluded.acked_by, acked_at = excluded.acked_at "
            "where alert_feedback.acked_at is null"
        )
        params = [rule, json.dumps(list(group)), format_time(since), by, format_time(now)]
        with translated("recording an acknowledgement"), self._atomic():
            self.db.execute(sql, params)

    def feedback(self, rule: str, group: tuple[str, ...], since: datetime) -> Feedback | None:
        sql = "select * from alert_feedback where rule = ? and group_key = ? and since = ?"
        with translated("reading feedback"):
            rows = self.db.query(sql, [rule, json.dumps(list(group)), format_time(since)])
        return _feedback(rows[0]) if rows else None

    def episode_since(self, rule: str, group: tuple[str, ...]) -> datetime | None:
        """When the key's latest episode began: its open state's, else its latest firing's
        (for a click on a parent whose buttons do not say)."""
        key = [rule, json.dumps(list(group))]
        with translated("reading an alert episode"):
            row = self.db.execute(
                "select since from alert_states where rule = ? and group_key = ? "
                "and status = 'firing'",
                key,
            ).fetchone()
            if row is None or not row[0]:
                row = self.db.execute(
                    "select since from alert_transitions where rule = ? and group_key = ? "
                    "and state = 'firing' order by at desc limit 1",
                    key,
                ).fetchone()
        return parse_time(row[0]) if row and row[0] else None

    def episodes(
        self, start: datetime, end: datetime | None = None, rule: str | None = None
    ) -> list[Episode]:
        """Alert episodes that began in [start, end), oldest first: every firing stored,
        and every episode with feedback (one adopted from Slack after a cold start has no
        firing in this database), each with its resolve and its feedback."""
        where, params = "since >= ?", [format_time(start)]
        if end is not None:
            where, params = where + " and since < ?", [*params, format_time(end)]
        if rule is not None:
            where, params = where + " and rule = ?", [*params, rule]
        with translated("reading alert episodes"):
            moves = self.db.query(
                "select rule, group_key, since, state, at, created_at, notified_at "
                f"from alert_transitions where state in ('firing', 'resolved') and {where} "
                "order by at, id",
                params,
            )
            said = self.db.query(f"select * from alert_feedback where {where}", params)
        found: dict[EpisodeKey, dict[str, Any]] = {}
        for row in moves:
            entry = found.setdefault((row["rule"], row["group_key"], row["since"]), {})
            if row["state"] == "firing":
                entry.setdefault("told_at", row["notified_at"] or row["created_at"])
            else:
                entry.setdefault("resolved_at", row["at"])
        for row in said:
            found.setdefault((row["rule"], row["group_key"], row["since"]), {})["feedback"] = (
                _feedback(row)
            )
        episodes = [
            Episode(
                rule=rule_name,
                group=tuple(json.loads(group_key)),
                since=parse_time(since),
                told_at=_time(entry.get("told_at")),
                resolved_at=_time(entry.get("resolved_at")),
                feedback=entry.get("feedback"),
            )
            for (rule_name, group_key, since), entry in found.items()
            # a resolve alone is the end of an episode that began before `start`
            if "told_at" in entry or "feedback" in entry
        ]
        return sorted(episodes, key=lambda e: (e.since, e.rule, e.group))

    def alert_stats(self, start: datetime, end: datetime | None = None) -> list[RuleStats]:
        """Per rule, the episodes that began in [start, end): how many, how many were
        acknowledged, marked expected, marked noise, and the median time from told to
        the first acknowledgement."""
        return rule_stats(self.episodes(start, end))


def rule_stats(episodes: list[Episode]) -> list[RuleStats]:
    """The figures of `alert_stats`, by rule name."""
    by_rule: dict[str, list[Episode]] = defaultdict(list)
    for episode in episodes:
        by_rule[episode.rule].append(episode)
    stats = []
    for rule, mine in sorted(by_rule.items()):
        said = [e.feedback for e in mine if e.feedback is not None]
        waits = [
            max(0.0, (e.feedback.acked_at - (e.told_at or e.since)).total_seconds())
            for e in mine
            if e.feedback is not None and e.feedback.acked_at is not None
        ]
        stats.append(
            RuleStats(
                rule=rule,
                alerts=len(mine),
                acknowledged=len(waits),
                expected=sum(f.verdict == EXPECTED for f in said),
                noise=sum(f.verdict == NOISE for f in said),
                median_ack_seconds=statistics.median(waits) if waits else None,
            )
        )
    return stats


def _feedback(row: dict[str, Any]) -> Feedback:
    return Feedback(
        rule=row["rule"],
        group=tuple(json.loads(row["group_key"])),
        since=parse_time(row["since"]),
        verdict=row["verdict"],
        verdict_by=row["verdict_by"],
        verdict_at=_time(row["verdict_at"]),
        acked_by=row["acked_by"],
        acked_at=_time(row["acked_at"]),
    )


def _time(text: str | None) -> datetime | None:
    return parse_time(text) if text else None
