"""Events in the store: saving a page of validated events (with the events-gap check),
and reading them back as `Event`s or as the columns detection and budgets count.

Part of `bot.store`: `EventsMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from bot.metrics import EventBatch, batch_from_rows
from bot.models import (
    Event,
    EventsPage,
    Gap,
    PollRecord,
    SaveResult,
    Tally,
    format_time,
    parse_time,
)

from .connection import Connection, translated
from .polls import insert_poll

# The events column of each breakdown dimension (bot.models.DIMENSIONS).
DIMENSION_COLUMNS = {
    "model": "model",
    "error_code": "error_code",
    "output_format": "output_format",
    "segment": "segment",
    "customer": "customer_id",
}


class EventsMixin(Connection):
    def save_events(
        self,
        page: EventsPage,
        stored_at: datetime,
        log: Callable[[SaveResult], PollRecord] | None = None,
    ) -> SaveResult:
        """Insert the page's unseen events; detect a gap before inserting. With `log`, the
        poll-log row it makes of the outcome is written in the same transaction (one
        commit, on PostgreSQL one round trip fewer): the events and their poll's row are
        stored together or not at all."""
        if not page.items:
            result = SaveResult((), None)
            if log is not None:
                with translated("writing the poll log"), self._atomic():
                    insert_poll(self.db, log(result))
            return result
        with translated("saving events"), self._atomic():
            ids = [event.id for event in page.items]
            known = self._known_ids(ids)
            gap = self._gap(page, known)
            fresh: dict[str, Event] = {}
            for event in page.items:
                if event.id not in known and event.id not in fresh:
                    fresh[event.id] = event
            stamp = format_time(stored_at)
            self.db.insert_batch("events", [self._row(e, stamp) for e in fresh.values()])
            if gap is not None:
                self.db.insert(
                    "event_gaps",
                    {
                        "detected_at": stamp,
                        "newest_stored_at": format_time(gap.newest_stored_at),
                        "oldest_seen_at": format_time(gap.oldest_seen_at),
                        "request_id": page.request_id,
                    },
                )
            result = SaveResult(tuple(fresh.values()), gap)
            if log is not None:
                insert_poll(self.db, log(result))
        return result

    def _gap(self, page: EventsPage, known: set[str]) -> Gap | None:
        """A full page none of whose events we hold, after we held some: more arrived
        than one page shows, and those in between are gone (usage-api.md 3b). Judged by
        id, not only by time: `created_at` has whole seconds, so at tens of events a
        second the page's oldest event often shares the second of the newest we hold
        while other events of that second were never shown."""
        if not page.is_full or known:
            return None
        newest = self.newest_event_time()
        oldest = min(event.created_at for event in page.items)
        if newest is not None and oldest >= newest:
            return Gap(newest_stored_at=newest, oldest_seen_at=oldest)
        return None

    def _known_ids(self, ids: list[str]) -> set[str]:
        if self.db.engine == "postgres":
            # One parameter: the statement is the same for any page, so psycopg caches
            # its parsing and the server its plan (100 `?`s are neither), and the ids
            # come back as one row, not a row each. A JSON array, written by the json
            # module's C encoder, costs less to send than a text[] psycopg adapts in
            # Python; array(...) is computed once, then the primary key is probed.
            sql = (
                "select array_agg(id) from events "
                "where id = any(array(select json_array_elements_text(?::json)))"
            )
            return set(self.db.execute(sql, [json.dumps(ids)]).fetchone()[0] or ())
        known: set[str] = set()
        for start in range(0, len(ids), 500):  # stay under SQLite's variable limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"select id from events where id in ({marks})", chunk)
            known.update(row[0] for row in rows)
        return known

    @staticmethod
    def _row(event: Event, stored_at: str) -> dict[str, Any]:
        metadata = dict(event.metadata)
        return {
            "id": event.id,
            "created_at": format_time(event.created_at),
            "request_id": event.request_id,
            "method": event.method,
            "endpoint": event.endpoint,
            "status_code": event.status_code,
            "job_id": event.job_id,
            "model": event.model,
            "output_format": event.output_format,
            "status": event.status,
            "credits_used": event.credits_used,
            "duration_seconds": event.duration_seconds,
            "error_code": event.error_code,
            "customer_id": _text_or_none(metadata.get("customer_id")),
            "segment": _text_or_none(metadata.get("segment")),
            "metadata": json.dumps(metadata, sort_keys=True) if metadata else None,
            "stored_at": stored_at,
        }

    def newest_event_time(self) -> datetime | None:
        with translated("reading events"):
            row = self.db.execute("select max(created_at) from events").fetchone()
        return parse_time(row[0]) if row and row[0] else None

    def oldest_event_time(self) -> datetime | None:
        with translated("reading events"):
            row = self.db.execute("select min(created_at) from events").fetchone()
        return parse_time(row[0]) if row and row[0] else None

    def count_events(self) -> int:
        with translated("counting events"):
            return int(self.db.execute("select count(*) from events").fetchone()[0])

    def recent_events(self, limit: int) -> list[Event]:
        """The newest events, newest first."""
        sql = "select * from events order by created_at desc, id desc limit ?"
        return list(self._events(sql, [limit]))

    def events_between(self, start: datetime, end: datetime) -> list[Event]:
        """Events with start <= created_at < end, oldest first."""
        sql = (
            "select * from events where created_at >= ? and created_at < ? order by created_at, id"
        )
        return list(self._events(sql, [format_time(start), format_time(end)]))

    def events_by_request_id(self, request_ids: Iterable[str]) -> list[Event]:
        ids = list(request_ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        sql = f"select * from events where request_id in ({marks}) order by created_at desc"
        return list(self._events(sql, ids))

    def _events(self, sql: str, params: list[Any]) -> Iterator[Event]:
        with translated("reading events"):
            rows = list(self.db.query(sql, params))
        for row in rows:
            yield _event_from_row(row)

    def tallies(
        self, start: datetime, end: datetime, where: Mapping[str, str], by: str
    ) -> list[Tally]:
        """Finished and failed jobs and credits of the events with start <= created_at <
        end whose dimensions have the values `where` gives ("" for none), per value of
        dimension `by`: what a breakdown counts (`bot.breakdown`)."""
        column = DIMENSION_COLUMNS[by]
        sql = (
            f"select coalesce({column}, '') as value, "
            "sum(case when status in ('completed', 'failed') then 1 else 0 end) as finished, "
            "sum(case when status = 'failed' then 1 else 0 end) as failed, "
            "coalesce(sum(credits_used), 0) as credits "
            "from events where created_at >= ? and created_at < ?"
        )
        params: list[Any] = [format_time(start), format_time(end)]
        for dimension, value in sorted(where.items()):
            name = DIMENSION_COLUMNS[dimension]
            if value:  # a plain comparison keeps the (model, created_at) index usable
                sql += f" and {name} = ?"
                params.append(value)
            else:
                sql += f" and ({name} is null or {name} = '')"
        sql += f" group by coalesce({column}, '') order by value"
        with translated("counting events"):
            rows = self.db.execute(sql, params).fetchall()
        return [
            Tally(str(value), int(finished or 0), int(failed or 0), float(credits or 0.0))
            for value, finished, failed, credits in rows
        ]

    def event_batch_since(self, start: datetime) -> EventBatch:
        """Stored events from `start` on, as the columns detection counts (fast path)."""
        sql = (
            "select created_at, model, segment, customer_id, status, credits_used "
            "from events where created_at >= ?"
        )
        with translated("reading events"):
            rows = self.db.execute(sql, [format_time(start)]).fetchall()
        return batch_from_rows(rows)


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _event_from_row(row: dict[str, Any]) -> Event:
    metadata = json.loads(row["metadata"]) if row["metadata"] else {}
    return Event(
        id=row["id"],
        created_at=parse_time(row["created_at"]),
        request_id=row["request_id"],
        method=row["method"],
        endpoint=row["endpoint"],
        status_code=row["status_code"],
        job_id=row["job_id"],
        model=row["model"],
        output_format=row["output_format"],
        status=row["status"],
        credits_used=row["credits_used"] or 0.0,
        duration_seconds=row["duration_seconds"],
        error_code=row["error_code"],
        metadata=metadata,
    )
