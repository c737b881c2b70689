"""Property-based tests (hypothesis) for every parser of foreign input.

Each property feeds a parser arbitrary or mutated input and proves that only the bot's
typed errors come out (`SourceError`/`SchemaDrift`, `ConfigError`), never a foreign
exception. Every `@example` is a regression: an input that once escaped as ValueError,
OverflowError, TypeError or RecursionError.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import numpy as np
import yaml
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from bot import backtest, hooks
from bot.budget import SLOT, status
from bot.commands import Action, Reply, handle_action, handle_command
from bot.config import Settings
from bot.errors import ConfigError, SourceError
from bot.metrics import EventBatch, UsageCube
from bot.models import Budget, EventsPage, RuleSet, Summary, parse_time
from bot.rules import default_rules_text, parse_rules
from bot.source import UsageClient
from bot.store import Store
from tests.helpers import EVENT as SOURCE_EVENT
from tests.helpers import T0, make_event

T = TypeVar("T")
FAST = settings(max_examples=120, deadline=None)

# -- generic JSON and nasty values -----------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=16,
)

# Serialized JSON is post-processed: a string "@raw:NAME" becomes the literal RAW[NAME].
RAW = {
    "big": "1" + "0" * 400,  # an integer float() cannot hold
    "e400": "1e400",  # a float literal that overflows to inf
    "nan": "NaN",
    "inf": "-Infinity",
    "deep": "[" * 3000 + "]" * 3000,  # deeper than the JSON decoder's recursion limit
    "deepobj": '{"a":' * 3000 + "1" + "}" * 3000,
}
NASTY_TIMES = [
    "2026-13-45T99:99:99Z",  # matches the schema's pattern, not a date
    "2026-02-30T10:00:00Z",
    "0001-01-01T00:00:00+01:00",  # valid, but out of range once converted to UTC
    "9999-12-31T23:59:59-01:00",
    "2026-11-29T10:00:00.1234567890Z",
    "2026-11-29T10:00:00+99:99",
    "2026-11-29T10:00:00Z\n",
    "\u0662\u0660\u0662\u0666-\u0661\u0661-\u0662\u0669T10:00:00Z",  # Arabic-Indic digits
]
NASTY_DATES = ["2026-13-45", "2026-02-30", "0000-01-01", "2026-11-29\n", "\u0662" * 4 + "-01-01"]
NASTY: st.SearchStrategy[Any] = (
    st.sampled_from(
        [
            *NASTY_TIMES,
            *NASTY_DATES,
            *(f"@raw:{name}" for name in RAW),
            -1,
            2**63,
            2**64 + 1,
            1.5,
            True,
            None,
            "",
            "\x00\ud7ff\ufeff\U0001f600",
            [],
            {},
        ]
    )
    | JSON_VALUES
)


def dump(value: Any) -> bytes:
    """JSON text with the @raw markers replaced by their literals."""
    text = json.dumps(value)
    for name, literal in RAW.items():
        text = text.replace(json.dumps(f"@raw:{name}"), literal)
    return text.encode("utf-8")


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(value, dict):
        for key, sub in value.items():
            found += _paths(sub, (*here, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            found += _paths(sub, (*here, index))
    return found


NASTY_TEXT = st.sampled_from([*NASTY_TIMES, *NASTY_DATES])
NASTY_NUMBER = st.sampled_from(
    ["@raw:big", "@raw:e400", "@raw:nan", "@raw:inf", -1, 2**63, 2**64 + 1, 1.5]
)


@st.composite
def mutated(draw: st.DrawFn, valid: Any, nasty: st.SearchStrategy[Any] = NASTY) -> Any:
    """`valid` with one to three places replaced (mostly), deleted or given an extra key.

    A text leaf is mostly replaced by a bad date or time, a number by a bad number: the
    bugs hide where everything else is valid and one field is subtly wrong.
    """
    body = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        # Leaves first: hypothesis favours the front of a sampled list.
        path = draw(st.sampled_from(sorted(_paths(body), key=len, reverse=True)))
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if not path:
            if action == "replace":
                body = draw(nasty)
            continue
        parent = body
        for part in path[:-1]:
            parent = parent[part]
        old = parent[path[-1]]
        if action == "replace":
            if isinstance(old, str):
                parent[path[-1]] = draw(NASTY_TEXT | nasty)
            elif isinstance(old, int | float) and not isinstance(old, bool):
                parent[path[-1]] = draw(NASTY_NUMBER | nasty)
            else:
                parent[path[-1]] = draw(nasty)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(nasty)
        else:
            parent.append(draw(nasty))
    return body


# -- 1. API bodies -----------------------------------------------------------------------

EVENT = {**SOURCE_EVENT, "credits_used": 60}  # the client tests' event, charging
EVENTS_BODY = {"limit": 100, "items": [EVENT, {**EVENT, "id": "evt_2", "status": "completed"}]}
FIGURES = {"total_jobs": 3, "completed_jobs": 2, "failed_jobs": 1, "credits_used": 120.5}
SUMMARY_BODY = {
    "days": 1,
    "start_date": "2026-11-29",
    "end_date": "2026-11-29",
    **FIGURES,
    "by_model": [{"model": "pro", **FIGURES}],
    "daily": [{"date": "2026-11-29", **FIGURES, "by_model": [{"model": "pro", **FIGURES}]}],
}

# Mostly 200: only a 2xx body gets past the status code to the parsers.
STATUSES = st.one_of(
    st.just(200),
    st.just(200),
    st.sampled_from([201, 204, 301, 400, 401, 402, 404, 429, 500, 503]),
    st.integers(100, 599),
)
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
HEADERS = st.fixed_dictionaries(
    {}, optional={"x-request-id": HEADER_TEXT, "retry-after": HEADER_TEXT}
)


def events_bodies() -> st.SearchStrategy[bytes]:
    return (
        st.binary(max_size=200)
        | JSON_VALUES.map(dump)
        | mutated(EVENTS_BODY).map(dump)
        | mutated(EVENTS_BODY).map(dump)
        | mutated(EVENTS_BODY).map(dump)
        | st.just(dump(EVENTS_BODY))
    )


def summary_bodies() -> st.SearchStrategy[bytes]:
    return (
        st.binary(max_size=200)
        | JSON_VALUES.map(dump)
        | mutated(SUMMARY_BODY).map(dump)
        | mutated(SUMMARY_BODY).map(dump)
        | mutated(SUMMARY_BODY).map(dump)
        | st.just(dump(SUMMARY_BODY))
    )


def call_api(status: int, body: bytes, headers: dict[str, str], call: Callable[[Any], T]) -> T:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers)

    with httpx.Client(base_url="http://usage.test", transport=httpx.MockTransport(handler)) as h:
        client = UsageClient(h, api_key="k", max_attempts=1, sleep=lambda s: None)
        return call(client)


@settings(max_examples=300, deadline=None)
@given(status=STATUSES, body=events_bodies(), headers=HEADERS)
@example(200, dump({"items": [{**EVENT, "created_at": "2026-13-45T99:99:99Z"}]}), {})
@example(200, dump({"items": [{**EVENT, "created_at": "0001-01-01T00:00:00+01:00"}]}), {})
@example(200, dump({"items": [{**EVENT, "credits_used": "@raw:big"}]}), {})
@example(200, dump({"items": [{**EVENT, "credits_used": "@raw:nan"}]}), {})
@example(200, dump({"items": [{**EVENT, "duration_seconds": "@raw:e400"}]}), {})
@example(200, dump({"items": [{**EVENT, "status_code": 2**64}]}), {})
@example(200, RAW["deep"].encode(), {})
@example(500, RAW["deepobj"].encode(), {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
def test_events_body_is_a_page_or_a_source_error(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    try:
        page = call_api(status, body, headers, lambda c: c.events(100))
    except SourceError:
        return
    assert 200 <= status < 400
    assert isinstance(page, EventsPage)
    for event in page.items:
        assert event.created_at.tzinfo is not None
        assert math.isfinite(event.credits_used) and event.credits_used >= 0
        assert event.duration_seconds is None or math.isfinite(event.duration_seconds)


@settings(max_examples=300, deadline=None)
@given(status=STATUSES, body=summary_bodies(), headers=HEADERS)
@example(200, dump({**SUMMARY_BODY, "end_date": "2026-13-45"}), {})
@example(200, dump({**SUMMARY_BODY, "daily": [{**FIGURES, "date": "2026-02-30"}]}), {})
@example(200, dump({**SUMMARY_BODY, "credits_used": "@raw:big"}), {})
@example(200, dump({**SUMMARY_BODY, "credits_used": "@raw:inf"}), {})
@example(200, dump({**SUMMARY_BODY, "total_jobs": 2**64}), {})
@example(200, RAW["deepobj"].encode(), {})
def test_summary_body_is_a_summary_or_a_source_error(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    try:
        summary = call_api(status, body, headers, lambda c: c.summary(30))
    except SourceError:
        return
    assert 200 <= status < 400
    assert isinstance(summary, Summary)
    assert math.isfinite(summary.credits_used)
    for row in summary.daily:
        assert math.isfinite(row.credits_used)
        assert max(row.total_jobs, row.completed_jobs, row.failed_jobs) < 2**63  # SQLite


# -- 2. rules.yaml -----------------------------------------------------------------------

RULES_FILE = "fuzz/rules.yaml"
DEFAULT_RULES = yaml.safe_load(default_rules_text())
RULE_KEYS = sorted({key for rule in DEFAULT_RULES["rules"] for key in rule} | {"for", "channel"})
YAML_SCALARS = (
    JSON_SCALARS
    | st.floats()  # .nan, .inf, -.inf
    | st.integers(min_value=10**300, max_value=10**400)
    | st.dates()
    | st.sampled_from(["15m", "7d", "0s", "1e9d", "9" * 400 + "d", "-5m", "1.5h", "<!here>", "#x"])
)
YAML_KEYS = st.sampled_from(
    ["version", "poll", "notify", "rules", "mention", "events_every", *RULE_KEYS]
) | st.text(max_size=6)
YAML_VALUES: st.SearchStrategy[Any] = st.recursive(
    YAML_SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(YAML_KEYS, kids, max_size=4),
    max_leaves=16,
)


@st.composite
def text_edits(draw: st.DrawFn, text: str) -> str:
    """The text with one slice replaced by arbitrary characters."""
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 40)))
    return text[:start] + draw(st.text(max_size=20)) + text[end:]


def _dump_yaml(value: Any) -> str:
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)


RULES_TEXTS = (
    st.text()
    | YAML_VALUES.map(_dump_yaml)
    | st.dictionaries(YAML_KEYS, YAML_VALUES, max_size=4).map(_dump_yaml)
    | mutated(DEFAULT_RULES, YAML_SCALARS | YAML_VALUES).map(_dump_yaml)
    | text_edits(default_rules_text())
)


@settings(max_examples=250, deadline=None)
@given(text=RULES_TEXTS)
@example("version: 2026-13-45\nrules: []\n")  # PyYAML's timestamp constructor: ValueError
@example("a: &a [*a]\nrules: []\n")  # a recursive alias
@example("[" * 2000 + "]" * 2000)
@example("1: a\nb: c\nrules: []\n")  # unknown keys of mixed types: sorted() TypeError
@example("poll:\n  events_every: " + "9" * 400 + "\nrules: []\n")  # float() OverflowError
@example("poll:\n  events_every: .inf\nrules: []\n")
@example("poll:\n  probe_every: " + "9" * 400 + "d\nrules: []\n")
@example("rules:\n- {name: a, metric: volume, z: .nan}\n")
@example("0:\n? '\n\n'")  # a key holding a newline split the problem line
@example("?")  # a null key: TypeError in _dotted
@example("rules:\n- {name: a, metric: spend, z: 1" + "0" * 400 + "}\n")  # numpy: OverflowError
@example("rules:\n- {name: a, metric: volume, baseline: .inf}\n")
def test_rules_text_is_a_ruleset_or_a_config_error(text: str) -> None:
    try:
        ruleset = parse_rules(text, RULES_FILE)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.startswith(RULES_FILE), problem
            assert "\n" not in problem, problem
        return
    assert isinstance(ruleset, RuleSet)
    poll = ruleset.poll
    for seconds in (poll.events_every, poll.summary_every, poll.probe_every):
        assert math.isfinite(seconds) and seconds > 0
    for rule in ruleset.rules:
        for seconds in (rule.bucket, rule.baseline, rule.remind_every):
            assert math.isfinite(seconds) and seconds > 0
        assert math.isfinite(rule.z) and math.isfinite(rule.min_rate)
        assert math.isfinite(rule.min_credits)


# -- 3. environment ----------------------------------------------------------------------

SECRETS = ("USAGE_API_KEY", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET")
PLAIN = (
    "USAGE_API_BASE_URL",
    "SLACK_API_URL",
    "SLACK_CHANNEL",
    "BOT_DB_PATH",
    "BOT_RULES_PATH",
    "BOT_POLL_SECONDS",
    "PORT",
    "LOG_LEVEL",
    "LOG_FORMAT",
)
MARK = "Qz7Kv"  # in every secret value; the error text must never contain it
ENV_TEXT = st.text(max_size=30) | st.sampled_from(
    ["https://a.test", "http://[::1", "http://\uff21\u2100b", "3000", "\u00b2", "9" * 5000, "#ops"]
)
SECRET_TEXT = st.builds(
    lambda prefix, tail: prefix + MARK + tail,
    st.sampled_from(["", "xoxb-", "xapp-", " "]),
    st.text(max_size=20),
)


@FAST
@given(
    env=st.fixed_dictionaries(
        {}, optional={**{name: ENV_TEXT for name in PLAIN}, **{s: SECRET_TEXT for s in SECRETS}}
    )
)
@example({"PORT": "\u00b2"})  # isdigit() but not int()
@example({"PORT": "9" * 5000})  # int() refuses over 4300 digits
@example({"USAGE_API_BASE_URL": "http://[::1"})  # urlsplit: Invalid IPv6 URL
@example({"SLACK_API_URL": "http://\uff21\u2100b", "USAGE_API_KEY": f"{MARK} x"})
def test_environment_is_settings_or_a_config_error_without_secrets(env: dict[str, str]) -> None:
    assume(all(MARK not in env.get(name, "") for name in PLAIN))
    try:
        settings_ = Settings.from_env(env)
    except ConfigError as exc:
        assert exc.problems
        assert MARK not in str(exc)
        assert all(MARK not in problem for problem in exc.problems)
        return
    assert isinstance(settings_, Settings)
    assert 1 <= settings_.port <= 65535


# -- 4. backtest lines -------------------------------------------------------------------

DEFAULT_RULESET = parse_rules(default_rules_text())
BT_START = datetime(2026, 11, 2, tzinfo=UTC)
# Times within a day: the backtest judges every 5 minutes from the first to the last.
BT_TIMES = st.integers(0, 86400).map(lambda s: (BT_START + timedelta(seconds=s)).isoformat())
BT_NASTY = NASTY.filter(
    lambda v: v not in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00")
)
BT_DATES = st.integers(-2, 2).map(lambda d: str(BT_START.date() + timedelta(days=d)))


@st.composite
def event_lines(draw: st.DrawFn) -> str:
    item = {**EVENT, "id": draw(st.text(max_size=5)), "created_at": draw(BT_TIMES)}
    item["status"] = draw(st.sampled_from(["completed", "failed", "created", None]))
    # Mostly valid: a file is rejected at its first bad line, so run() needs good ones.
    broken = draw(st.integers(0, 4)) == 0
    return json.dumps(draw(mutated(item, BT_NASTY)) if broken else item)


@st.composite
def summary_dicts(draw: st.DrawFn) -> Any:
    start, end = sorted([draw(BT_DATES), draw(BT_DATES)])
    body = {**SUMMARY_BODY, "start_date": start, "end_date": end}
    body["daily"] = [
        {"date": draw(BT_DATES), **FIGURES, "by_model": [{"model": "pro", **FIGURES}]}
        for _ in range(draw(st.integers(0, 2)))
    ]
    broken = draw(st.integers(0, 2)) == 0
    return draw(mutated(body, BT_NASTY)) if broken else body


LINES = st.lists(event_lines(), max_size=6) | st.lists(
    event_lines() | st.text(max_size=30) | JSON_VALUES.map(json.dumps) | st.just(RAW["deep"]),
    max_size=6,
)


def _load_summary(raw: Any) -> Any:
    """What `usage-bot backtest --summary FILE` hands to load(): json.load of the file
    (NaN and 1e400 included). A file nested too deeply for json.load never gets here."""
    try:
        return json.loads(dump(raw))
    except RecursionError:
        return UNLOADABLE


UNLOADABLE = object()
SUMMARIES = summary_dicts().map(_load_summary).filter(lambda body: body is not UNLOADABLE)


@settings(max_examples=100, deadline=None)
@given(lines=LINES, summary=st.none() | SUMMARIES | JSON_VALUES)
@example([RAW["deep"]], None)
@example([json.dumps({"created_at": "2026-11-02T10:00:00+00:00"})], None)  # no id
@example([json.dumps({**EVENT, "created_at": "2026-11-02T10:00:00Z", "status": []})], None)
@example([json.dumps({**EVENT, "created_at": "2026-11-02T10:00:00Z", "credits_used": "x"})], None)
@example([], {**SUMMARY_BODY, "end_date": "2026-13-45"})
@example([], {**SUMMARY_BODY, "credits_used": 10**400})
def test_backtest_load_is_a_recording_or_a_config_error(lines: list[str], summary: Any) -> None:
    try:
        recording = backtest.load(DEFAULT_RULESET.rules, lines, summary)
    except ConfigError as exc:
        assert exc.problems
        return
    assert isinstance(recording, backtest.Recording)
    backtest.run(recording)  # whatever load accepted, run can judge


BT_ITEM = {**EVENT, "metadata": {"segment": "enterprise", "customer_id": "acme"}}


@settings(max_examples=300, deadline=None)
@given(
    raw=mutated(BT_ITEM, BT_NASTY)
    | mutated(BT_ITEM, NASTY)
    | (NASTY_TEXT | st.text(max_size=40)).map(lambda t: {**BT_ITEM, "created_at": t})
)
@example({**BT_ITEM, "credits_used": "@raw:nan"})  # NaN passes the schema: left to it
@example({**BT_ITEM, "status_code": 200.0})  # an integer to the schema, not to the check
@example({**BT_ITEM, "created_at": "2026-02-30T10:00:00Z"})
@example({**BT_ITEM, "created_at": "2026-11-29T10:00:00.1234567890Z"})
@example({**BT_ITEM, "created_at": "0001-01-01T00:00:00Z"})
@example({**BT_ITEM, "created_at": "0001-01-01T00:00:00+01:00"})  # out of range in UTC
@example({**BT_ITEM, "duration_seconds": True})
def test_backtest_quick_check_passes_only_what_the_validator_passes(raw: Any) -> None:
    """`backtest._plain_row` skips the schema validator: whatever it passes, the
    validator and parse_time pass too (the other way round is allowed: it may leave
    a valid event to them)."""
    try:
        item = json.loads(dump(raw))  # as a line arrives: NaN, 1e400 and all
    except RecursionError:
        return
    if backtest._plain_row(item) is not None:
        backtest._event_validator()(item)
        parse_time(item["created_at"])


# -- 5. slash-command text ---------------------------------------------------------------

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


WORDS = st.sampled_from(
    [
        *("summary", "events", "model", "alerts", "help", "public", "silence", "unsilence"),
        "budget",
        *("pro", "PRO", "failed-job-rate", "failed-job-rate/pro", "a/b/c", "/", "7", "0", "91"),
        *("1h", "59s", "8d", "9" * 400 + "d", "1e9m", "\u0661h"),
    ]
) | st.text(min_size=1, max_size=8)
COMMAND_TEXTS = st.text() | st.lists(WORDS, max_size=5).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(text=COMMAND_TEXTS, user=st.none() | st.text(max_size=5))
@example("model \u0130 7", None)
@example("summary \u0667 public", None)
@example("events " + "9" * 5000, None)
@example("silence failed-job-rate/pro " + "9" * 400 + "d why", "U1")
def test_slash_command_text_always_gets_a_reply(text: str, user: str | None) -> None:
    # A fresh store each time: silence and unsilence write to it.
    store = Store(None)
    try:
        events = tuple(make_event(i, T0 + timedelta(hours=i)) for i in range(5))
        store.save_events(EventsPage(100, events), NOW)
        reply = handle_command(text, store=store, now=NOW, user=user)
    finally:
        store.close()
    assert isinstance(reply, Reply)
    assert reply.text


# -- interactivity payloads (button clicks) ------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=12,
)
CLICK = {
    "type": "block_actions",
    "user": {"id": "U1"},
    "channel": {"id": "C0123ABCD"},
    "message": {"ts": "1795400000.000100", "blocks": [{"type": "section"}]},
    "actions": [
        {"action_id": "ack", "value": json.dumps({"rule": "failed-job-rate", "group": ["pro"]})}
    ],
}


@settings(max_examples=150, deadline=None)
@given(payload=mutated(CLICK, JSON_VALUES) | JSON_VALUES)
@example({"actions": [{"action_id": "ack", "value": "[" * 5000}]})
@example({**CLICK, "message": {"ts": "1", "blocks": "not a list"}})
@example({**CLICK, "actions": [{**CLICK["actions"][0], "action_id": ["ack"]}]})  # unhashable
@example(  # feedback naming an episode that no datetime can hold: the key's latest instead
    {
        **CLICK,
        "actions": [
            {
                "action_id": "usage_noise",
                "value": json.dumps(
                    {"rule": "r", "group": [], "since": "0001-01-01T00:00:00+01:00"}
                ),
            }
        ],
    }
)
@example(
    {
        **CLICK,
        "actions": [
            {
                "action_id": "usage_expected",
                "value": json.dumps({"rule": "r", "group": [], "since": 7}),
            }
        ],
    }
)
def test_a_button_payload_always_gets_an_action(payload: Any) -> None:
    store = Store(None)
    try:
        action = handle_action(payload, store=store, now=NOW)
    finally:
        store.close()
    assert isinstance(action, Action) and action.text


# -- enforcement hook signatures and budget maths -------------------------------------------


@settings(max_examples=150, deadline=None)
@given(timestamp=st.text(max_size=20), signature=st.text(max_size=80), body=st.binary(max_size=64))
@example("9" * 400, "sha256=", b"")
def test_hook_verification_only_ever_answers_true_or_false(
    timestamp: str, signature: str, body: bytes
) -> None:
    assert hooks.verify("secret", timestamp, body, signature, now=1_800_000_000) in (True, False)


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(
        st.tuples(st.floats(0, 50 * 86400), st.floats(0, 1e9), st.sampled_from(["pro", "light"])),
        max_size=40,
    ),
    limit=st.floats(1e-3, 1e12),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kathmandu", "America/St_Johns"]),
    period=st.sampled_from(["day", "week", "month"]),
)
def test_budget_status_is_consistent_for_any_spend(
    points: list[tuple[float, float, str]], limit: float, zone: str, period: str
) -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    cube = UsageCube(SLOT)
    if points:
        cube.add(
            EventBatch(
                epoch=np.array([now.timestamp() - p[0] for p in points]),
                group=[(p[2], "", "") for p in points],
                kind=np.zeros(len(points), dtype=np.int8),
                credits=np.array([p[1] for p in points]),
            )
        )
    state = status(Budget("b", limit, period=period, timezone=zone), cube, None, now)
    assert math.isfinite(state.spent) and state.spent >= 0
    if state.forecast is not None:
        f = state.forecast
        assert (
            f.low <= f.projected + 1e-6 * max(1.0, f.projected) <= f.high + 1e-3 * max(1.0, f.high)
        )
        assert f.projected >= state.spent * (1 - 1e-9)
