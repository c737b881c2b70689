"""Rules: rules.yaml read strictly into a `RuleSet` (the schema, its checks, the builder).

Every problem is listed at once as `file:line: field: what is wrong`, raised as
`ConfigError`; `usage-bot check` prints them. The embedded default rules are here too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import yaml

from bot.config import CHANNEL_HINT, CHANNEL_RE, Settings
from bot.errors import ConfigError
from bot.models import (
    GROUP_KEYS,
    METRICS,
    PERIODS,
    SCOPE_KEYS,
    Budget,
    DigestConfig,
    Grouping,
    PollConfig,
    Rule,
    RuleSet,
)


def default_rules_text() -> str:
    """The rules embedded in the package (the same file as the repo's rules.yaml)."""
    return files("bot").joinpath("default_rules.yaml").read_text(encoding="utf-8")


def load_ruleset(settings: Settings, explicit: str | None = None) -> RuleSet:
    """The rules file named, else BOT_RULES_PATH, else ./rules.yaml, else the embedded one."""
    path = Path(explicit or settings.rules_path)
    if explicit is None and settings.rules_path == "rules.yaml" and not path.exists():
        return parse_rules(default_rules_text(), "<embedded default rules>")
    return load_rules(path)


DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_HINT = "must be a positive duration like 30s, 15m, 1h or 7d"
_DURATION_OR_ZERO_HINT = "must be a duration like 0s, 5m or 1h"
MAX_DURATION = 90 * 86400.0  # the summary reaches back 90 days; nothing here needs more

_DURATION = {"type": ["string", "number"], "x-duration": True}
_DURATION_OR_ZERO = {"type": ["string", "number"], "x-duration": "or zero"}
MAX_GROUP_WAIT = 3600.0  # a new incident is told only after its wait: never more than this
_NAME = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_.-]{0,63}$"}
MENTION_PATTERN = r"^(<!here>|<!channel>|<!subteam\^[A-Z0-9]+>|<@[A-Z0-9]+>)$"
_POSITIVE_INT = {"type": "integer", "minimum": 1}

RULES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["rules"],
    "properties": {
        "version": {"enum": [1]},
        "poll": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "events_every": _DURATION,
                "events_limit": {"type": "integer", "minimum": 1, "maximum": 100},
                "summary_every": _DURATION,
                "summary_days": {"type": "integer", "minimum": 1, "maximum": 90},
                "backfill_days": {"type": "integer", "minimum": 1, "maximum": 90},
                "probe_every": _DURATION,
                "events_floor": _DURATION,
                "max_requests_per_minute": _POSITIVE_INT,
            },
        },
        "notify": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "mention": {
                    "type": "string",
                    "pattern": r"^(<!here>|<!channel>|<!subteam\^[A-Z0-9]+>|<@[A-Z0-9]+>)$",
                },
            },
        },
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "metric"],
                "properties": {
                    "name": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_.-]{0,63}$"},
                    "metric": {"enum": list(METRICS)},
                    "source": {"enum": ["events", "summary"]},
                    "group_by": {
                        "type": "array",
                        "items": {"enum": list(GROUP_KEYS)},
                        "uniqueItems": True,
                    },
                    "bucket": _DURATION,
                    "baseline": _DURATION,
                    "method": {"enum": ["robust", "plain"]},
                    "seasonal": {"enum": ["none", "hour_of_day", "weekday"]},
                    "z": {"type": "number", "minimum": 0},
                    "direction": {"enum": ["up", "down", "both"]},
                    "min_volume": {"type": "integer", "minimum": 0},
                    "min_rate": {"type": "number", "minimum": 0, "maximum": 1},
                    "false_alerts": {"type": "number", "exclusiveMinimum": 0, "maximum": 30},
                    "min_credits": {"type": "number", "minimum": 0},
                    "for": _POSITIVE_INT,
                    "recover_for": _POSITIVE_INT,
                    "remind_every": _DURATION,
                    "channel": {"type": "string", "x-channel": True},
                    "severity": {"enum": ["info", "warning", "critical"]},
                    "runbook": {"type": "string", "pattern": r"^https?://\S+$"},
                    "grouping": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "group": {**_NAME},
                            "by": {
                                "type": "array",
                                "items": {"enum": list(GROUP_KEYS)},
                                "uniqueItems": True,
                            },
                            "wait": _DURATION_OR_ZERO,
                            "interval": _DURATION_OR_ZERO,
                        },
                    },
                },
            },
        },
        "grouping": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "wait": _DURATION_OR_ZERO,
                "interval": _DURATION_OR_ZERO,
                "inhibit": {"type": "boolean"},
            },
        },
    },
}

_BUDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "limit"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_.-]{0,63}$"},
        "limit": {"type": "number", "exclusiveMinimum": 0},
        "period": {"enum": list(PERIODS)},
        "timezone": {"type": "string", "x-timezone": True},
        "scope": {
            "type": "object",
            "additionalProperties": False,
            "properties": {key: {"type": "string", "minLength": 1} for key in SCOPE_KEYS},
        },
        "thresholds": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
        },
        "forecast": {"type": "boolean"},
        "credit_price": {"type": "number", "exclusiveMinimum": 0},
        "currency": {"type": "string", "pattern": r"^[A-Z]{3}$"},
        "channel": {"type": "string", "x-channel": True},
        "webhook": {"type": "string", "pattern": r"^[A-Z][A-Z0-9_]{0,63}$"},
    },
}

_DIGEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "at": {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$"},
        "timezone": {"type": "string", "x-timezone": True},
        "channels": {"type": "array", "items": {"type": "string", "x-channel": True}},
    },
}

RULES_SCHEMA["properties"]["budgets"] = {"type": "array", "items": _BUDGET_SCHEMA}
RULES_SCHEMA["properties"]["digest"] = _DIGEST_SCHEMA

_PATTERN_HINTS = {
    "name": "must be lower-case letters, digits, '-', '_' or '.' (at most 64)",
    "runbook": "must be an http(s) URL",
    "mention": "must be <!here>, <!channel>, a user group <!subteam^S0123> or a user <@U0123>",
    "currency": "must be a three-letter currency code like USD or EUR",
    "webhook": "must name an environment variable, like BUDGET_WEBHOOK_URL",
    "at": "must be a 24-hour time like 09:00",
    "group": "must be lower-case letters, digits, '-', '_' or '.' (at most 64)",
}


def parse_duration(value: object, *, zero: bool = False) -> float | None:
    """'15m' -> 900.0; a bare number is seconds. None when it is not a positive duration
    (with `zero`, 0 and '0s' are accepted too)."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and (match := DURATION_RE.match(value.strip())):
            seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        else:
            return None
    except OverflowError:  # an integer of 400 digits
        return None
    return seconds if (0 <= seconds if zero else 0 < seconds) and seconds < math.inf else None


def load_rules(path: str | Path) -> RuleSet:
    """Read, validate and build the rule set; ConfigError lists every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read rules file ({exc.strerror})") from exc
    return parse_rules(text, str(path))


def parse_rules(text: str, filename: str = "rules.yaml") -> RuleSet:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except RecursionError as exc:  # [[[[... thousands deep
        raise ConfigError(f"{filename}: not valid YAML: nested too deeply") from exc
    except ValueError as exc:  # PyYAML builds `2026-13-45` as a date and fails
        raise ConfigError(f"{filename}: not valid YAML: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{filename}{line}: not valid YAML: {problem}") from exc
    lines: dict[tuple[str | int, ...], int] = {}
    try:
        problems = [f"{filename}:{ln}: {msg}" for ln, msg in _index_lines(node, (), lines)]
        if data is None:
            data = {}
        found = list(_schema_problems(data))
    except RecursionError as exc:  # a recursive alias: a: &a [*a]
        raise ConfigError(f"{filename}: nested too deeply (a recursive alias?)") from exc
    if not found and not problems:
        found = [*_semantic_problems(data), *_budget_problems(data)]
    located = sorted(
        ((_line_of(lines, path), _dotted(path), message) for path, message in found),
        key=lambda item: item[0],
    )
    problems += [f"{filename}:{line}: {where}: {message}" for line, where, message in located]
    if problems:
        raise ConfigError(problems)
    return _build(data)


def _index_lines(
    node: yaml.Node | None, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]
) -> Iterator[tuple[int, str]]:
    """Map every key path to its 1-based line; yield duplicate-key problems."""
    if node is None:
        return
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                yield key_node.start_mark.line + 1, f"{_dotted((*path, key))}: duplicate key"
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            yield from _index_lines(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _index_lines(item, (*path, index), lines)


def _line_of(lines: Mapping[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        # YAML keys may be null, dates or text holding a newline: show those as repr.
        name = part if isinstance(part, str) and part.isprintable() else repr(part)
        text += f".{name}" if text else name
    return text or "(top level)"


def _schema_problems(data: object) -> Iterator[tuple[tuple[str | int, ...], str]]:
    validator = jsonschema.Draft202012Validator(RULES_SCHEMA)
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            # YAML keys need not be text (1:, null:, 2026-01-01:): sort them as text.
            for key in sorted((k for k in error.instance if k not in known), key=str):
                hint = ", ".join(sorted(known))
                yield (*path, key), f"unknown key (expected one of: {hint})"
        else:
            yield path, _friendly(error)
    yield from _custom_problems(data, RULES_SCHEMA, ())


def _friendly(error: jsonschema.ValidationError) -> str:
    kind, got = error.validator, error.instance
    want: Any = error.validator_value
    if kind == "type":
        wanted = " or ".join(_TYPE_WORDS[w] for w in (want if isinstance(want, list) else [want]))
        return f"must be {wanted} (got {_TYPE_WORDS.get(_json_type(got), 'null')} {_short(got)})"
    if kind == "enum":
        return f"must be one of {', '.join(map(str, want))} (got {got!r})"
    if kind == "minimum":
        return f"must be >= {want} (got {got!r})"
    if kind == "exclusiveMinimum":
        return f"must be > {want} (got {got!r})"
    if kind == "minItems":
        return "must not be empty"
    if kind == "maximum":
        return f"must be <= {want} (got {got!r})"
    if kind == "required":
        missing = [k for k in want if isinstance(got, dict) and k not in got]
        return f"missing required key {', '.join(map(repr, missing))}"
    if kind == "pattern" and error.path:
        return f"{_PATTERN_HINTS.get(str(error.path[-1]), 'has the wrong form')} (got {got!r})"
    if kind == "uniqueItems":
        return f"must not repeat an item (got {got!r})"
    return error.message


_TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "string": "text",
    "object": "a mapping",
    "array": "a list",
    "boolean": "true or false",
    "null": "empty",
}


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _custom_problems(
    data: object, schema: Mapping[str, Any], path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Checks JSON Schema cannot word well: durations and Slack channels."""
    if isinstance(data, int | float) and not isinstance(data, bool) and not _finite(data):
        yield path, f"must be a finite number (got {_short(data)})"  # .nan, .inf, 10**400
    elif schema.get("x-duration") and isinstance(data, str | int | float):
        zero = schema["x-duration"] == "or zero"
        seconds = parse_duration(data, zero=zero)
        if seconds is None:
            hint = _DURATION_OR_ZERO_HINT if zero else _DURATION_HINT
            yield path, f"{hint} (got {data!r})"
        elif seconds > MAX_DURATION:
            yield path, f"must be at most 90d (got {data!r})"
    if schema.get("x-timezone") and isinstance(data, str) and zone(data) is None:
        yield path, f"must be a time zone name like UTC or Europe/Berlin (got {data!r})"
    if schema.get("x-channel") and isinstance(data, str) and not CHANNEL_RE.match(data):
        yield path, f"{CHANNEL_HINT} (got {data!r})"
    if isinstance(data, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in data:
                yield from _custom_problems(data[key], sub, (*path, key))
    elif isinstance(data, list) and "items" in schema:
        for index, item in enumerate(data):
            yield from _custom_problems(item, schema["items"], (*path, index))


def zone(name: str) -> ZoneInfo | None:
    """The IANA time zone `name`, or None when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # unknown, or "../etc/passwd"-like keys
        return None


def _finite(number: float) -> bool:
    """False for NaN, infinities and integers too large for a float (numpy refuses them)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _semantic_problems(data: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Cross-field rules, checked once every field has the right type."""
    yield from _poll_problems(data.get("poll") or {})
    names: set[str] = set()
    for index, rule in enumerate(data.get("rules") or ()):
        here: tuple[str | int, ...] = ("rules", index)
        if rule["name"] in names:
            yield (*here, "name"), f"duplicate rule name {rule['name']!r}"
        names.add(rule["name"])
        source, metric = rule.get("source", "events"), rule["metric"]
        if source == "summary" and "bucket" in rule:
            yield (*here, "bucket"), "summary rules are daily; remove bucket"
        if source == "summary" and rule.get("seasonal") == "hour_of_day":
            yield (*here, "seasonal"), "hour_of_day needs an events rule with buckets <= 1h"
        if source == "summary" and any(k.startswith("metadata.") for k in rule.get("group_by", ())):
            yield (*here, "group_by"), "the summary has no metadata; group summary rules by model"
        if metric != "failure_rate" and "min_rate" in rule:
            yield (*here, "min_rate"), "only failure_rate rules take min_rate"
        if (metric != "failure_rate" or source == "summary") and "false_alerts" in rule:
            yield (*here, "false_alerts"), "only events failure_rate rules take false_alerts"
        if metric != "spend" and "min_credits" in rule:
            yield (*here, "min_credits"), "only spend rules take min_credits"
        bucket = parse_duration(rule.get("bucket", 900)) or 900.0
        baseline = parse_duration(rule.get("baseline", "7d")) or 0.0
        step = 86400.0 if source == "summary" else bucket
        if baseline < 3 * step:
            yield (*here, "baseline"), "must cover at least 3 buckets of history"
        if rule.get("seasonal") == "hour_of_day" and bucket > 3600:
            yield (*here, "seasonal"), "hour_of_day needs buckets of 1h or less"
    yield from _grouping_problems(data)


def _grouping_problems(data: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """A rule groups its incidents only by fields it groups by; rules sharing a group
    share its incidents, so they must agree on how (and where) those are told."""
    top = data.get("grouping") or {}
    wait, interval = _group_timing(top, Grouping())
    if wait > MAX_GROUP_WAIT:
        yield ("grouping", "wait"), "must be at most 1h: a new incident is told only after it"
    first: dict[str, tuple[int, dict[str, object]]] = {}
    for index, rule in enumerate(data.get("rules") or ()):
        here: tuple[str | int, ...] = ("rules", index, "grouping")
        raw = rule.get("grouping") or {}
        for position, name in enumerate(raw.get("by", ())):
            if name not in rule.get("group_by", ()):
                yield (*here, "by", position), f"{name} is not in this rule's group_by"
        own_wait, own_interval = _group_timing(raw, Grouping(wait=wait, interval=interval))
        if "wait" in raw and own_wait > MAX_GROUP_WAIT:
            yield (*here, "wait"), "must be at most 1h: a new incident is told only after it"
        family = raw.get("group", rule["name"])
        told = {
            "by": sorted(raw.get("by", ()), key=GROUP_KEYS.index),
            "wait": own_wait,
            "interval": own_interval,
            "channel": rule.get("channel"),
        }
        if family not in first:
            first[family] = (index, told)
            continue
        other, theirs = first[family]
        for what, value in told.items():
            if value == theirs[what]:
                continue
            shown = _shown(what, theirs[what])
            where = (*here, what) if what != "channel" else ("rules", index, "channel")
            yield (
                where,
                (
                    f"rules of group {family!r} must agree on {what} "
                    f"(rules[{other}] has {shown}, this one {_shown(what, value)})"
                ),
            )


def _group_timing(raw: Mapping[str, Any], defaults: Grouping) -> tuple[float, float]:
    wait = parse_duration(raw.get("wait"), zero=True)
    interval = parse_duration(raw.get("interval"), zero=True)
    return (
        defaults.wait if wait is None else wait,
        defaults.interval if interval is None else interval,
    )


def _shown(what: str, value: object) -> str:
    if what in ("wait", "interval") and isinstance(value, float):
        return f"{value:g}s"
    if what == "channel" and value is None:
        return "the default channel"
    return str(value).replace("'", "")


def _poll_problems(poll: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """A quiet account's interval must fit under the ceiling of requests a minute."""
    defaults = PollConfig()
    every = parse_duration(poll.get("events_every")) or defaults.events_every
    ceiling = poll.get("max_requests_per_minute", defaults.max_requests_per_minute)
    if every < 60.0 / ceiling:
        where = "events_every" if "events_every" in poll else "max_requests_per_minute"
        message = f"every {every:g}s is {60.0 / every:g} polls a minute, over the ceiling"
        yield ("poll", where), f"{message} of max_requests_per_minute ({ceiling})"


def _budget_problems(data: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    names: set[str] = set()
    for index, budget in enumerate(data.get("budgets") or ()):
        here: tuple[str | int, ...] = ("budgets", index)
        if budget["name"] in names:
            yield (*here, "name"), f"duplicate budget name {budget['name']!r}"
        names.add(budget["name"])
        if "currency" in budget and "credit_price" not in budget:
            yield (*here, "currency"), "a currency needs a credit_price"


def _build(data: dict[str, Any]) -> RuleSet:
    poll = data.get("poll") or {}
    defaults = PollConfig()
    poll_config = PollConfig(
        events_every=parse_duration(poll.get("events_every")) or defaults.events_every,
        events_limit=poll.get("events_limit", defaults.events_limit),
        summary_every=parse_duration(poll.get("summary_every")) or defaults.summary_every,
        summary_days=poll.get("summary_days", defaults.summary_days),
        backfill_days=poll.get("backfill_days", defaults.backfill_days),
        probe_every=parse_duration(poll.get("probe_every")) or defaults.probe_every,
        events_floor=parse_duration(poll.get("events_floor")) or defaults.events_floor,
        max_requests_per_minute=poll.get(
            "max_requests_per_minute", defaults.max_requests_per_minute
        ),
    )
    top = data.get("grouping") or {}
    wait, interval = _group_timing(top, Grouping())
    rules = tuple(
        _build_rule(raw, Grouping(wait=wait, interval=interval)) for raw in data.get("rules") or ()
    )
    mention = (data.get("notify") or {}).get("mention", RuleSet.mention)
    budgets = tuple(_build_budget(raw) for raw in data.get("budgets") or ())
    digest = None
    if "digest" in data:
        raw = data["digest"] or {}
        hour, minute = (int(part) for part in raw.get("at", "09:00").split(":"))
        channels = tuple(raw.get("channels") or ())
        digest = DigestConfig((hour, minute), raw.get("timezone", "UTC"), channels)
    inhibit = bool(top.get("inhibit", RuleSet.inhibit))
    return RuleSet(poll_config, mention, rules, budgets, digest, inhibit)


def _build_budget(raw: dict[str, Any]) -> Budget:
    values = dict(raw)
    scope = values.pop("scope", None) or {}
    values["scope"] = tuple((key, scope[key]) for key in SCOPE_KEYS if key in scope)
    values["limit"] = float(values["limit"])
    if "thresholds" in values:
        values["thresholds"] = tuple(sorted(float(t) for t in values["thresholds"]))
    return Budget(**values)


def _build_rule(raw: dict[str, Any], defaults: Grouping) -> Rule:
    values = dict(raw)
    grouping = values.pop("grouping", None) or {}
    wait, interval = _group_timing(grouping, defaults)
    values["grouping"] = Grouping(
        group=grouping.get("group", raw["name"]),
        by=tuple(sorted(grouping.get("by", ()), key=GROUP_KEYS.index)),
        wait=wait,
        interval=interval,
    )
    values["for_"] = values.pop("for", Rule.for_)
    values["group_by"] = tuple(values.get("group_by", ()))
    if values.get("source") == "summary":
        values["bucket"] = 86400.0
    for key in ("bucket", "baseline", "remind_every"):
        if key in values:
            values[key] = parse_duration(values[key])
    return Rule(**values)
