"""Usage counts in fixed time slots: the bridge from stored events to detection arrays.

Sits between `store` and `detect`: events (live, from the store; or recorded, for a
backtest) are counted per fine group (model, segment, customer) into `step`-second slots
of data time; a rule then projects the slots onto its own groups and windows. Pure numpy,
no I/O and no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.models import DailyUsage, Event

# Slot fields, first axis of the count arrays. `charged`: events that charged credits
# (a spend rule's evidence test counts them; a failed job may be charged too).
JOBS, FINISHED, FAILED, CREDITS, CHARGED = range(5)
FIELDS = ("jobs", "finished", "failed", "credits", "charged")

# Event kinds, from the job status an event reports.
KIND_OTHER, KIND_START, KIND_COMPLETED, KIND_FAILED = range(4)
_KINDS = {
    "pending": KIND_START,
    "created": KIND_START,
    "completed": KIND_COMPLETED,
    "failed": KIND_FAILED,
}

# The fine group of an event: what any rule's group_by may select from.
GROUP_FIELDS = ("model", "metadata.segment", "metadata.customer_id")
FineGroup = tuple[str, str, str]
Row = tuple[float, FineGroup, int, float]  # one event: epoch, fine group, kind, credits
NONE = ""  # an event without that field (shown as "(none)")

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EventBatch:
    """Events as columns: what the cube needs, nothing more."""

    epoch: npt.NDArray[np.float64]  # created_at, seconds since the epoch
    group: Sequence[FineGroup]
    kind: npt.NDArray[np.int8]
    credits: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.epoch)


def batch_from_events(events: Iterable[Event]) -> EventBatch:
    rows = [
        (
            e.created_at.timestamp(),
            _fine_group(e.model, e.metadata),
            _KINDS.get(e.status or "", KIND_OTHER),
            e.credits_used,
        )
        for e in events
    ]
    return batch_of(rows)


def batch_from_items(items: Iterable[Mapping[str, Any]]) -> EventBatch:
    """From API-shaped dicts (usage-api.md 3b), e.g. a backtest's JSON Lines."""
    return batch_of([item_row(item) for item in items])


def item_row(item: Mapping[str, Any]) -> Row:
    """One API-shaped dict as a row of `batch_of` (a backtest collects them line by line)."""
    return (
        datetime.fromisoformat(item["created_at"]).timestamp(),
        _fine_group(item.get("model"), item.get("metadata")),
        _KINDS.get(item.get("status") or "", KIND_OTHER),
        float(item.get("credits_used") or 0.0),
    )


def batch_from_rows(rows: Iterable[Sequence[Any]]) -> EventBatch:
    """From stored rows: (created_at text, model, segment, customer_id, status, credits)."""
    return batch_of(
        [
            (
                datetime.fromisoformat(created).timestamp(),
                (_text(model), _text(segment), _text(customer)),
                _KINDS.get(status or "", KIND_OTHER),
                float(credits or 0.0),
            )
            for created, model, segment, customer, status, credits in rows
        ]
    )


def batch_of(rows: list[Row]) -> EventBatch:
    """Rows of (epoch, fine group, kind, credits) as columns."""
    if not rows:
        return EventBatch(np.zeros(0), [], np.zeros(0, np.int8), np.zeros(0))
    epoch, group, kind, credits = zip(*rows, strict=True)
    return EventBatch(
        np.asarray(epoch, dtype=np.float64),
        list(group),
        np.asarray(kind, dtype=np.int8),
        np.asarray(credits, dtype=np.float64),
    )


def _fine_group(model: object, metadata: object) -> FineGroup:
    meta = metadata if isinstance(metadata, Mapping) else {}
    return (_text(model), _text(meta.get("segment")), _text(meta.get("customer_id")))


def _text(value: object) -> str:
    return value if isinstance(value, str) else NONE


class UsageCube:
    """Counts per (field, fine group, slot); grows as events arrive in any order.

    Slot k holds events with k*step <= created_at < (k+1)*step (epoch seconds).
    `covered_from` is the first slot we have event data for: earlier slots are unknown,
    not zero, unless daily summary figures fill them in (`project`).
    """

    def __init__(self, step: int) -> None:
        self.step = step
        self.groups: list[FineGroup] = []
        self._index: dict[FineGroup, int] = {}
        self.origin = 0  # slot number of column 0
        self.floor = 0  # slots before this one are forgotten (some may still be held)
        self.data = np.zeros((len(FIELDS), 0, 0))
        self.covered_from: int | None = None
        self.first_seen = np.zeros(0, dtype=np.int64)  # per group: slot of its first event

    @property
    def end(self) -> int:
        """One past the last slot held."""
        return self.origin + self.data.shape[2]

    def add(self, batch: EventBatch) -> None:
        if not len(batch):
            return
        slots = np.floor_divide(batch.epoch, self.step).astype(np.int64)
        if int(slots.min()) < self.floor:  # events from before what was forgotten
            self._cut()
            self.floor = int(slots.min())
        rows = np.fromiter((self._row(g) for g in batch.group), np.int64, len(batch))
        self._reserve(int(slots.min()), int(slots.max()) + 1)
        cols = slots - self.origin
        kinds = batch.kind
        for field, mask in (
            (JOBS, kinds == KIND_START),
            (FINISHED, (kinds == KIND_COMPLETED) | (kinds == KIND_FAILED)),
            (FAILED, kinds == KIND_FAILED),
            (CHARGED, batch.credits > 0),
        ):
            np.add.at(self.data[field], (rows[mask], cols[mask]), 1.0)
        np.add.at(self.data[CREDITS], (rows, cols), batch.credits)
        np.minimum.at(self.first_seen, rows, slots)
        low = int(slots.min())
        self.covered_from = low if self.covered_from is None else min(self.covered_from, low)

    def forget_before(self, slot: int) -> None:
        """Drop slots older than `slot` (live memory stays bounded). The room goes back a
        quarter of the width at a time: cutting at every new slot would copy the whole
        cube (a week of every group) once per slot."""
        if slot <= self.floor:
            return
        self.floor = slot
        if self.covered_from is not None:
            self.covered_from = max(self.covered_from, slot)
        if 4 * (slot - self.origin) >= self.data.shape[2]:
            self._cut()

    def _cut(self) -> None:
        """Give back the slots before `floor`."""
        cut = self.floor - self.origin
        if cut > 0:
            self.data = np.ascontiguousarray(self.data[:, :, cut:])
            self.origin = self.floor

    def trim(self, end: int) -> None:
        """Give back the room reserved past slot `end`: a cube that forgets as fast as it
        grows (a window of the newest slots) would otherwise widen at every growth."""
        width = end - self.origin
        if 0 <= width < self.data.shape[2]:
            self.data = np.ascontiguousarray(self.data[:, :, :width])

    def counts(self, lo: int, hi: int, rows: Sequence[int] | None = None) -> FloatArray:
        """(fields, groups, hi - lo) counts for slots [lo, hi), zero outside the cube: of
        every group, or of the groups at `rows` (in that order)."""
        picked: Any = slice(0, len(self.groups)) if rows is None else list(rows)
        out = np.zeros((len(FIELDS), len(self.groups) if rows is None else len(rows), hi - lo))
        a, b = max(lo, self.origin, self.floor), min(hi, self.end)
        if a < b:
            out[:, :, a - lo : b - lo] = self.data[:, picked, a - self.origin : b - self.origin]
        return out

    def first_slot(self, group: FineGroup) -> int:
        """The slot of the first event held of a group the cube has seen."""
        return int(self.first_seen[self._index[group]])

    def _row(self, group: FineGroup) -> int:
        row = self._index.get(group)
        if row is None:
            row = self._index[group] = len(self.groups)
            self.groups.append(group)
            self.first_seen = np.append(self.first_seen, np.iinfo(np.int64).max)
        return row

    def _reserve(self, lo: int, hi: int) -> None:
        """Make room for slots [lo, hi) and every known group, doubling to amortise."""
        _, rows, width = self.data.shape
        need_rows = len(self.groups)
        new_lo, new_hi = (min(lo, self.origin), max(hi, self.end)) if width else (lo, hi)
        if width and (new_lo, new_hi) == (self.origin, self.end) and rows >= need_rows:
            return
        if width and new_hi > self.end:
            new_hi += new_hi - new_lo  # live data arrives at the end: leave room to grow
        new_rows = max(need_rows, 2 * rows) if need_rows > rows else rows
        grown = np.zeros((len(FIELDS), new_rows, new_hi - new_lo))
        if width:
            at = self.origin - new_lo
            grown[:, :rows, at : at + width] = self.data
        self.data, self.origin = grown, new_lo


def daily_slot_counts(
    daily: Mapping[tuple[date, str], DailyUsage], model: str, lo: int, hi: int, step: int
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Summary figures spread evenly over the slots of each day: (fields, hi - lo), known.

    Used where events are not held (before the bot was installed, or after a dyno lost
    its disk), so baselines exist from the first minutes. `model` TOTAL gives the account.
    """
    out = np.zeros((len(FIELDS), hi - lo))
    known = np.zeros(hi - lo, dtype=bool)
    per_day = 86400 // step
    first_day = _slot_day(lo, step)
    last_day = _slot_day(hi - 1, step)
    day = first_day
    while day <= last_day:
        row = daily.get((day, model))
        day_lo = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) // step
        a, b = max(day_lo, lo), min(day_lo + per_day, hi)
        if row is not None and a < b:
            finished = row.completed_jobs + row.failed_jobs
            # The summary does not say which jobs charged: the completed ones stand in.
            values = (
                row.total_jobs,
                finished,
                row.failed_jobs,
                row.credits_used,
                row.completed_jobs,
            )
            out[:, a - lo : b - lo] = np.asarray(values, dtype=np.float64)[:, None] / per_day
            known[a - lo : b - lo] = True
        day += timedelta(days=1)
    return out, known


def _slot_day(slot: int, step: int) -> date:
    return datetime.fromtimestamp(slot * step, UTC).date()
