"""Settings from the environment and rules.yaml: strict, every problem named."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Settings, hook_urls, url_secrets
from bot.errors import ConfigError
from bot.rules import default_rules_text, load_rules, parse_duration, parse_rules

RULES = Path(__file__).parent / "data" / "rules"
BAD = sorted((RULES / "bad").glob("*.yaml"))
GOOD = sorted((RULES / "good").glob("*.yaml"))


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_each_bad_rules_file_gives_its_exact_error(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(RULES)
    expected = path.with_suffix(".error").read_text().splitlines()
    with pytest.raises(ConfigError) as caught:
        load_rules(path.relative_to(RULES))
    assert caught.value.problems == expected


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_good_rules_files_load(path: Path) -> None:
    ruleset = load_rules(path)
    assert ruleset.rules


def test_full_rules_file_fills_every_field() -> None:
    ruleset = load_rules(RULES / "good" / "full.yaml")
    assert ruleset.poll.events_every == 30.0
    assert ruleset.poll.summary_every == 600.0
    first, daily = ruleset.rules
    assert first.group_by == ("model", "metadata.segment")
    assert (first.bucket, first.baseline, first.for_, first.recover_for) == (300.0, 172800.0, 2, 3)
    assert first.direction == "both" and first.method == "plain"
    assert daily.bucket == 86400.0 and daily.seasonal == "weekday"
    assert daily.channel == "C0123ABCD"


def test_default_rules_are_valid_and_the_repo_file_is_the_embedded_one() -> None:
    ruleset = parse_rules(default_rules_text())
    assert {r.name for r in ruleset.rules} >= {"failed-job-rate", "spend-per-model", "total-spend"}
    repo_rules = Path(__file__).parent.parent / "rules.yaml"
    assert repo_rules.read_text() == default_rules_text()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("15m", 900.0), ("1h", 3600.0), ("7d", 604800.0), (90, 90.0), ("250ms", 0.25)],
)
def test_durations_parse(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-5m", "0s", "5 minutes", "", True, None, "1w"])
def test_bad_durations_are_refused(text: object) -> None:
    assert parse_duration(text) is None


def test_defaults_when_environment_is_empty() -> None:
    settings = Settings.from_env({})
    assert settings.api_base_url == "https://api.removebgvideo.com"
    assert settings.db_path == "usage-bot.db" and settings.port == 3000
    assert settings.poll_seconds is None and settings.log_format == "text"


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        ("USAGE_API_BASE_URL", "ftp://x", "USAGE_API_BASE_URL: must be an http(s) URL"),
        ("BOT_POLL_SECONDS", "soon", "BOT_POLL_SECONDS: must be a positive number of seconds"),
        ("BOT_POLL_SECONDS", "-1", "BOT_POLL_SECONDS: must be a positive number of seconds"),
        ("PORT", "70000", "PORT: must be a port number 1..65535"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT: must be one of text, json"),
        ("SLACK_CHANNEL", "alerts", "SLACK_CHANNEL: must be a channel name"),
        ("SLACK_APP_TOKEN", "xoxb-wrong-kind", "SLACK_APP_TOKEN: must start with 'xapp-'"),
    ],
)
def test_a_bad_env_var_gives_one_line_naming_it(name: str, value: str, line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(line)


def test_a_bad_secret_is_named_but_never_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SLACK_BOT_TOKEN": "hunter2-secret-value"})
    assert "SLACK_BOT_TOKEN" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_secrets_are_hidden_from_repr() -> None:
    settings = Settings.from_env({"USAGE_API_KEY": "key-123456", "SLACK_BOT_TOKEN": "xoxb-abcdef"})
    assert "key-123456" not in repr(settings) and "xoxb-abcdef" not in repr(settings)
    assert set(settings.secrets()) == {"key-123456", "xoxb-abcdef"}


def test_check_lists_every_problem_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOT_POLL_SECONDS", "never")
    monkeypatch.chdir(RULES)
    assert main(["check", "bad/many_problems.yaml"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("BOT_POLL_SECONDS: must be a positive number")
    assert err[1:5] == (RULES / "bad" / "many_problems.error").read_text().splitlines()
    assert err[-1] == "usage-bot check: 5 problem(s)"


def test_check_passes_with_one_line_summary(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BOT_POLL_SECONDS", "SLACK_BOT_TOKEN", "USAGE_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["check", str(RULES / "good" / "full.yaml")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("OK: 2 rules (failed-job-rate, daily-spend)")


def test_budgets_and_the_digest_are_read_with_their_defaults() -> None:
    ruleset = parse_rules(
        "rules: []\n"
        "budgets:\n"
        "  - {name: all, limit: 1000000}\n"
        "  - name: pro\n"
        "    limit: 5000\n"
        "    period: week\n"
        "    timezone: Europe/Berlin\n"
        "    scope: {segment: enterprise, model: pro}\n"
        "    thresholds: [100, 50]\n"
        "    credit_price: 0.01\n"
        "    currency: EUR\n"
        "    webhook: PRO_HOOK\n"
        "digest: {at: '07:45', timezone: America/New_York}\n"
    )
    every, pro = ruleset.budgets
    assert (every.period, every.timezone, every.scope, every.thresholds) == (
        "month",
        "UTC",
        (),
        (50.0, 80.0, 100.0),
    )
    assert pro.scope == (("model", "pro"), ("segment", "enterprise"))
    assert pro.thresholds == (50.0, 100.0)  # sorted: told lowest first
    assert (pro.credit_price, pro.currency, pro.webhook) == (0.01, "EUR", "PRO_HOOK")
    assert ruleset.digest is not None
    assert (ruleset.digest.at, ruleset.digest.timezone) == ((7, 45), "America/New_York")
    assert parse_rules("rules: []").digest is None  # no digest unless asked for


def test_a_hook_needs_its_url_variable_and_the_secret() -> None:
    budgets = parse_rules(
        "rules: []\nbudgets: [{name: pro, limit: 5, webhook: PRO_HOOK}]\n"
    ).budgets
    with pytest.raises(ConfigError) as caught:
        hook_urls(budgets, {})
    assert caught.value.problems == [
        "PRO_HOOK: budget 'pro' sends its hook there; set it to the URL of your enforcement "
        "endpoint"
    ]
    with pytest.raises(ConfigError) as caught:
        hook_urls(budgets, {"PRO_HOOK": "ftp://token-123@host/x"})
    problems = caught.value.problems
    assert problems == [
        "BUDGET_WEBHOOK_SECRET: needed to sign the budget webhooks",
        "PRO_HOOK: must be an http(s) URL like https://api.example.com (value not shown)",
    ]
    assert "token-123" not in " ".join(problems)
    env = {"PRO_HOOK": "https://ops.example.com/pause?token=t0k3n", "BUDGET_WEBHOOK_SECRET": "s3"}
    assert hook_urls(budgets, env) == {"pro": env["PRO_HOOK"]}
    assert url_secrets(env["PRO_HOOK"]) == [env["PRO_HOOK"], "token=t0k3n"]
