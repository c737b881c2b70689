"""Configuration: `Settings` from the environment and `RuleSet` from rules.yaml.

The only module that reads `os.environ`. Both loaders are strict and list every
problem at once (file, line, field) by raising `ConfigError`; the bot never starts
half-configured.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import yaml

from bot.errors import ConfigError
from bot.models import (
    GROUP_KEYS,
    METRICS,
    PERIODS,
    SCOPE_KEYS,
    Budget,
    DigestConfig,
    PollConfig,
    Rule,
    RuleSet,
)

# -- environment ---------------------------------------------------------------------

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CHANNEL_RE = re.compile(r"^(#[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{6,})$")
CHANNEL_HINT = "must be a channel name like #usage-alerts or a channel ID like C0123ABCD"


@dataclass(frozen=True)
class Settings:
    """Deployment knobs and secrets, read once at start (12-factor)."""

    api_base_url: str = "https://api.removebgvideo.com"
    api_key: str | None = field(default=None, repr=False)
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_api_url: str = "https://slack.com/api/"
    slack_channel: str | None = None
    slack_app_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    db_path: str = "usage-bot.db"
    rules_path: str = "rules.yaml"
    poll_seconds: float | None = None
    port: int = 3000
    log_level: str = "INFO"
    log_format: str = "text"
    webhook_secret: str | None = field(default=None, repr=False)  # signs enforcement hooks
    api_token: str | None = field(default=None, repr=False)  # bearer token of GET /budget

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ConfigError naming each bad one."""
        reader = _EnvReader(os.environ if env is None else env)
        settings = cls(
            api_base_url=reader.url("USAGE_API_BASE_URL", cls.api_base_url),
            api_key=reader.secret("USAGE_API_KEY"),
            slack_bot_token=reader.secret("SLACK_BOT_TOKEN", prefix="xox"),
            slack_api_url=reader.url("SLACK_API_URL", cls.slack_api_url),
            slack_channel=reader.channel("SLACK_CHANNEL"),
            slack_app_token=reader.secret("SLACK_APP_TOKEN", prefix="xapp-"),
            slack_signing_secret=reader.secret("SLACK_SIGNING_SECRET"),
            db_path=reader.text("BOT_DB_PATH", cls.db_path),
            rules_path=reader.text("BOT_RULES_PATH", cls.rules_path),
            poll_seconds=reader.positive_float("BOT_POLL_SECONDS"),
            port=reader.port("PORT", cls.port),
            log_level=reader.choice("LOG_LEVEL", LOG_LEVELS, cls.log_level, upper=True),
            log_format=reader.choice("LOG_FORMAT", ("text", "json"), cls.log_format),
            webhook_secret=reader.secret("BUDGET_WEBHOOK_SECRET"),
            api_token=reader.secret("BOT_API_TOKEN"),
        )
        if reader.problems:
            raise ConfigError(reader.problems)
        return settings

    def secrets(self) -> list[str]:
        """Every secret value, so logging can scrub them from any line."""
        values = (self.api_key, self.slack_bot_token, self.slack_app_token)
        more = (self.slack_signing_secret, self.webhook_secret, self.api_token)
        return [v for v in (*values, *more) if v]


def url_secrets(url: str) -> list[str]:
    """The parts of a hook URL that may be credentials, for the log scrubber: the URL,
    its query string and its password (httpx logs URLs at DEBUG)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return [url]
    return [part for part in (url, parts.query, password) if part]


def hook_urls(budgets: Sequence[Budget], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each budget's enforcement hook URL, read from the env var the budget names.

    The URL lives in the environment, not in rules.yaml: it often carries a token.
    ConfigError names every variable that is missing or not an http(s) URL, and
    BUDGET_WEBHOOK_SECRET when a hook exists without it.
    """
    reader = _EnvReader(os.environ if env is None else env)
    urls: dict[str, str] = {}
    for budget in budgets:
        if budget.webhook is None:
            continue
        if reader.env.get(budget.webhook, "").strip():
            urls[budget.name] = reader.url(budget.webhook, "", shown=False)
        else:
            reader.problems.append(
                f"{budget.webhook}: budget {budget.name!r} sends its hook there; set it to "
                "the URL of your enforcement endpoint"
            )
    if urls and reader.secret("BUDGET_WEBHOOK_SECRET") is None:
        reader.problems.append("BUDGET_WEBHOOK_SECRET: needed to sign the budget webhooks")
    if reader.problems:
        raise ConfigError(sorted(set(reader.problems)))
    return urls


class _EnvReader:
    """Typed getters that collect problems instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def _get(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None  # an empty Heroku config var means unset

    def _bad(self, name: str, what: str, shown: str | None) -> None:
        got = f" (got {shown!r})" if shown is not None else " (value not shown)"
        self.problems.append(f"{name}: {what}{got}")

    def text(self, name: str, default: str) -> str:
        return self._get(name) or default

    def secret(self, name: str, prefix: str = "") -> str | None:
        value = self._get(name)
        if value is not None and (not value.startswith(prefix) or any(c.isspace() for c in value)):
            what = f"must start with {prefix!r}" if prefix else "must not contain spaces"
            self._bad(name, what, None)  # never echo a secret, even a wrong one
        return value

    def url(self, name: str, default: str, *, shown: bool = True) -> str:
        value = self._get(name)
        if value is None:
            return default
        try:
            parts = urlsplit(value)
        except ValueError:  # "http://[::1" (bad IPv6), NFKC-unsafe netloc
            parts = urlsplit("")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            what = "must be an http(s) URL like https://api.example.com"
            self._bad(name, what, value if shown else None)
        return value

    def channel(self, name: str) -> str | None:
        value = self._get(name)
        if value is not None and not CHANNEL_RE.match(value):
            self._bad(name, CHANNEL_HINT, value)
        return value

    def positive_float(self, name: str) -> float | None:
        value = self._get(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not number > 0 or number == float("inf"):
            self._bad(name, "must be a positive number of seconds", value)
            return None
        return number

    def port(self, name: str, default: int) -> int:
        value = self._get(name)
        if value is None:
            return default
        # isdigit() alone admits "²" (int() refuses it) and 5000 digits (over int()'s limit)
        if not (value.isascii() and value.isdigit() and len(value) <= 5) or not (
            1 <= int(value) <= 65535
        ):
            self._bad(name, "must be a port number 1..65535", value)
            return default
        return int(value)

    def choice(self, name: str, allowed: tuple[str, ...], default: str, upper: bool = False) -> str:
        value = self._get(name)
        if value is None:
            return default
        value = value.upper() if upper else value.lower()
        if value not in allowed:
            self._bad(name, f"must be one of {', '.join(allowed)}", value)
            return default
        return value


# -- rules.yaml -------------------------------------------------------------------------

DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_HINT = "must be a positive duration like 30s, 15m, 1h or 7d"
MAX_DURATION = 90 * 86400.0  # the summary reaches back 90 days; nothing here needs more

_DURATION = {"type": ["string", "number"], "x-duration": True}
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
                    "min_credits": {"type": "number", "minimum": 0},
                    "for": _POSITIVE_INT,
                    "recover_for": _POSITIVE_INT,
                    "remind_every": _DURATION,
                    "channel": {"type": "string", "x-channel": True},
                    "severity": {"enum": ["info", "warning", "critical"]},
                    "runbook": {"type": "string", "pattern": r"^https?://\S+$"},
                },
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
}


def parse_duration(value: object) -> float | None:
    """'15m' -> 900.0; a bare number is seconds. None when it is not a positive duration."""
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
    return seconds if 0 < seconds < math.inf else None


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
        seconds = parse_duration(data)
        if seconds is None:
            yield path, f"{_DURATION_HINT} (got {data!r})"
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
        if metric != "spend" and "min_credits" in rule:
            yield (*here, "min_credits"), "only spend rules take min_credits"
        bucket = parse_duration(rule.get("bucket", 900)) or 900.0
        baseline = parse_duration(rule.get("baseline", "7d")) or 0.0
        step = 86400.0 if source == "summary" else bucket
        if baseline < 3 * step:
            yield (*here, "baseline"), "must cover at least 3 buckets of history"
        if rule.get("seasonal") == "hour_of_day" and bucket > 3600:
            yield (*here, "seasonal"), "hour_of_day needs buckets of 1h or less"


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
    )
    rules = tuple(_build_rule(raw) for raw in data.get("rules") or ())
    mention = (data.get("notify") or {}).get("mention", RuleSet.mention)
    budgets = tuple(_build_budget(raw) for raw in data.get("budgets") or ())
    digest = None
    if "digest" in data:
        raw = data["digest"] or {}
        hour, minute = (int(part) for part in raw.get("at", "09:00").split(":"))
        channels = tuple(raw.get("channels") or ())
        digest = DigestConfig((hour, minute), raw.get("timezone", "UTC"), channels)
    return RuleSet(poll_config, mention, rules, budgets, digest)


def _build_budget(raw: dict[str, Any]) -> Budget:
    values = dict(raw)
    scope = values.pop("scope", None) or {}
    values["scope"] = tuple((key, scope[key]) for key in SCOPE_KEYS if key in scope)
    values["limit"] = float(values["limit"])
    if "thresholds" in values:
        values["thresholds"] = tuple(sorted(float(t) for t in values["thresholds"]))
    return Budget(**values)


def _build_rule(raw: dict[str, Any]) -> Rule:
    values = dict(raw)
    values["for_"] = values.pop("for", Rule.for_)
    values["group_by"] = tuple(values.get("group_by", ()))
    if values.get("source") == "summary":
        values["bucket"] = 86400.0
    for key in ("bucket", "baseline", "remind_every"):
        if key in values:
            values[key] = parse_duration(values[key])
    return Rule(**values)
