"""`usage-bot backtest`: the live detection path run over recorded data.

Reads events as JSON Lines (usage-api.md 3b items, any order) and optionally one summary
response (3a), feeds them to the same `Engine` and `Monitor` the worker drives, and
reports every alert transition. No Slack, no network, no database.
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from bot.api_schema import EVENT_SCHEMA, SUMMARY_SCHEMA
from bot.engine import STEP, Engine
from bot.errors import ConfigError
from bot.metrics import Row, batch_from_events, batch_of, item_row
from bot.models import Event, Rule, Summary, Transition, format_time, parse_time
from bot.monitor import Monitor, enrich

MAX_SPAN = timedelta(days=400)  # 5-minute moments over a longer span are a mistake, not data
CHUNK = 50_000  # events parsed per batch: bounds memory on million-line files


class EventIndex:
    """Where each event sits in the file, by time: examples are read back on demand.
    (In arrays: a million times and offsets take 16 MB, ~68 MB as Python lists.)"""

    def __init__(self) -> None:
        self._parts: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]] = []
        self._times = np.zeros(0)
        self._spots = np.zeros(0, dtype=np.int64)

    def add(self, epochs: npt.NDArray[np.float64], spots: Sequence[int]) -> None:
        self._parts.append((np.asarray(epochs, np.float64), np.asarray(spots, np.int64)))

    def freeze(self) -> None:
        times = np.concatenate([self._times, *(t for t, _ in self._parts)])
        spots = np.concatenate([self._spots, *(s for _, s in self._parts)])
        order = np.argsort(times, kind="stable")  # equal times keep their file order
        self._times, self._spots, self._parts = times[order], spots[order], []

    def first(self) -> float | None:
        """The earliest event's time (after `freeze`), None without events."""
        return float(self._times[0]) if len(self._times) else None

    def last(self) -> float | None:
        """The latest event's time (after `freeze`), None without events."""
        return float(self._times[-1]) if len(self._times) else None

    def spots_between(self, start: float, end: float) -> list[int]:
        lo, hi = np.searchsorted(self._times, (start, end), side="left")
        spots: list[int] = self._spots[lo:hi].tolist()
        return spots


@dataclass
class Recording:
    """Events and summary loaded for a backtest."""

    engine: Engine
    first: datetime
    last: datetime
    lines: Sequence[str] | None  # in-memory items (tests) or None when read from a file
    path: Path | None
    index: EventIndex

    def events_between(self, start: datetime, end: datetime) -> list[Event]:
        spots = self.index.spots_between(start.timestamp(), end.timestamp())
        if self.lines is not None:
            return [Event.from_api(json.loads(self.lines[s])) for s in spots]
        assert self.path is not None
        found = []
        with self.path.open("rb") as handle:
            for spot in sorted(spots):
                handle.seek(spot)
                found.append(Event.from_api(json.loads(handle.readline())))
        return found


def load(
    rules: Sequence[Rule],
    events: Path | Sequence[str],
    summary: Mapping[str, Any] | None = None,
) -> Recording:
    """Count the events (a JSON Lines file, or its lines) and the summary into an engine."""
    engine = Engine(rules)
    index = EventIndex()
    if isinstance(events, Path):
        with events.open("rb") as handle:
            stream: Iterable[tuple[int, bytes | str]] = _offsets(handle)
            _count(engine, index, stream, events.name)
        lines = None
    else:
        _count(engine, index, enumerate(events), "events")
        lines = events
    index.freeze()
    low, high = index.first(), index.last()
    first = None if low is None else datetime.fromtimestamp(low, UTC)
    last = None if high is None else datetime.fromtimestamp(high, UTC)
    if summary is not None:
        parsed = _summary(summary)
        engine.add_daily(parsed.daily, final_before=parsed.end_date)
        days_start = datetime.combine(parsed.start_date, datetime.min.time(), UTC)
        first = min(first or days_start, days_start)
        last = last or datetime.combine(parsed.end_date, datetime.min.time(), UTC)
    if first is not None and last is not None and last - first > MAX_SPAN:
        raise ConfigError(
            f"backtest: the data spans {(last - first).days} days; at most "
            f"{MAX_SPAN.days} days can be judged in one run"
        )
    if first is None or last is None:
        raise ConfigError("backtest: no events and no summary to judge")
    path = events if isinstance(events, Path) else None
    return Recording(engine, first, last, lines, path, index)


def _offsets(handle: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    spot = handle.tell()
    for line in handle:
        yield spot, line
        spot += len(line)


def _count(
    engine: Engine, index: EventIndex, lines: Iterable[tuple[int, bytes | str]], name: str
) -> None:
    rows: list[Row] = []
    spots: list[int] = []
    for number, (spot, line) in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            row = _plain_row(item)
            if row is None:  # not plainly an event: the full checks say why (or let it pass)
                _event_validator()(item)  # what run() and item_row rely on
                parse_time(item["created_at"])  # e.g. 2026-02-30 fits the schema's pattern
                row = item_row(item)
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
            raise ConfigError(f"{name}:{number}: not an event item ({exc})") from exc
        # Only the row is kept: holding the parsed dicts made the garbage collector
        # walk them over and over (a third of the load's time on a million events).
        rows.append(row)
        spots.append(spot)
        if len(rows) >= CHUNK:
            _add(engine, index, rows, spots)
            rows, spots = [], []
    _add(engine, index, rows, spots)


def _add(engine: Engine, index: EventIndex, rows: list[Row], spots: list[int]) -> None:
    batch = batch_of(rows)
    engine.add_events(batch)
    index.add(batch.epoch, spots)


# What `_plain_row` takes as plainly valid: the event schema's fields, each with the
# Python types json.loads gives for the values the schema allows (a bool is no number
# there), and a created_at in UTC written with ASCII digits (another offset goes
# through parse_time's checks).
_NULL = type(None)
_TEXT = (str, _NULL)
_NUMBER = (int, float, _NULL)
_PLAIN = {
    "id": (str,),
    "created_at": (str,),
    "request_id": _TEXT,
    "method": _TEXT,
    "endpoint": _TEXT,
    "status_code": (int, _NULL),
    "job_id": _TEXT,
    "model": _TEXT,
    "output_format": _TEXT,
    "status": _TEXT,
    "credits_used": _NUMBER,
    "duration_seconds": _NUMBER,
    "error_code": _TEXT,
    "metadata": (dict, _NULL),
}
_fields = operator.itemgetter(*_PLAIN)
_PLAIN_TYPES = frozenset(itertools.product(*_PLAIN.values()))  # 9,216 combinations
_STATUSES = frozenset(EVENT_SCHEMA["properties"]["status"]["enum"])
_MAX = EVENT_SCHEMA["properties"]["credits_used"]["maximum"]
_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|\+00:00)"
_utc_time = re.compile(_UTC, re.ASCII).fullmatch


def _plain_row(item: Any) -> Row | None:
    """The item's row when it plainly passes the event schema, else None: then the
    schema validator decides, and words the error. The check takes about a third of the
    validator's time on a typical event; tests/test_fuzz.py holds it to the validator."""
    if type(item) is not dict:
        return None
    try:
        values = _fields(item)
    except KeyError:  # a field left out: allowed, but not the API's usual shape
        return None
    if tuple(map(type, values)) not in _PLAIN_TYPES:
        return None
    ident, created, _, _, _, code, _, _, _, status, credits, duration, _, _ = values
    if not (
        ident
        and _utc_time(created)
        and status in _STATUSES
        and (code is None or -_MAX <= code <= _MAX)
        and (credits is None or 0 <= credits <= _MAX)  # NaN fails here: the validator decides
        and (duration is None or 0 <= duration <= _MAX)
    ):
        return None
    try:
        return item_row(item)
    except ValueError:  # a date like 2026-02-30: parse_time words it as before
        return None


@functools.cache
def _event_validator() -> Callable[[Any], Any]:
    import fastjsonschema

    validate: Callable[[Any], Any] = fastjsonschema.compile(EVENT_SCHEMA)
    return validate  # raises JsonSchemaValueException, a ValueError


def _summary(body: Mapping[str, Any]) -> Summary:
    import fastjsonschema

    try:
        fastjsonschema.compile(SUMMARY_SCHEMA)(body)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise ConfigError(f"summary file: {exc.message}") from exc
    try:
        return Summary.from_api(body)
    except (ValueError, OverflowError) as exc:  # a date like 2026-13-45 fits the pattern
        raise ConfigError(f"summary file: {exc}") from exc


def run(recording: Recording, poll_every: float | None = None) -> list[Transition]:
    """Judge every rule from the first event to the last; transitions with examples.

    By default at the 5-minute marks, over all the data at once. With `poll_every`
    (seconds), as a worker polling that often would: the events arrive poll by poll
    (those created up to each poll's time) and each poll also judges the window ending
    at that moment (`Monitor.run(live=True)`), so alerts fire when the worker's would.
    """
    if poll_every is None:
        found = judge(recording.engine, recording.first, recording.last)
    else:
        start = recording.first - timedelta(seconds=STEP)
        until = recording.last + timedelta(seconds=STEP)  # the window holding the last event
        found = _replay(recording, start, until, poll_every)
    return [enrich(t, recording.engine, recording.events_between) for t in found]


def _replay(
    recording: Recording, start: datetime, until: datetime, every: float
) -> list[Transition]:
    """The polls of a worker, at the multiples of `every` seconds of data time from the
    first event on (the summary's days before it are judged at their marks first)."""
    engine = Engine(recording.engine.rules)
    if recording.engine.final_before is not None:
        engine.add_daily(recording.engine.daily.values(), recording.engine.final_before)
    monitor = Monitor(engine)
    step = timedelta(seconds=every)
    first = recording.index.first()
    if first is None:  # a summary alone: nothing arrives poll by poll
        return monitor.run(until, start)
    moment = datetime.fromtimestamp(-(-first // every) * every, UTC)
    held = moment - step
    found = monitor.run(held, start)
    tick = timedelta(microseconds=1)  # created_at in (held, moment]: events_between is [a, b)
    while moment <= until:
        fresh = recording.events_between(held + tick, moment + tick)
        engine.add_events(batch_from_events(fresh))
        found.extend(monitor.run(moment, start, live=bool(fresh)))
        held, moment = moment, moment + step
    return found


def judge(engine: Engine, first: datetime, last: datetime) -> list[Transition]:
    """Every alert transition of the engine's rules from `first` to `last` (data time),
    every key starting ok, without examples: the worker's `Monitor` over the data held.
    (`usage-bot tune` replays the store's events through it too.)"""
    start = first - timedelta(seconds=STEP)
    until = last + timedelta(seconds=STEP)  # judge the window holding the last event
    return Monitor(engine).run(until, start)


def to_json(t: Transition) -> str:
    """One line of `backtest --json` (interface.md)."""
    return json.dumps(
        {
            "rule": t.rule,
            "state": t.state,
            "at": format_time(t.at),
            "key": t.key,
            "value": round(t.value, 6),
            "zscore": round(t.zscore, 3),
            "baseline": round(t.baseline, 6),
            "request_ids": list(t.request_ids),
            "job_ids": list(t.job_ids),
        }
    )
