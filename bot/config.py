"""Configuration from the environment: `Settings`, read once into a frozen value.

The only module that reads `os.environ`. Strict: every problem at once, one line per
variable, raised as `ConfigError`; the bot never starts half-configured. The rules file
is `rules.py`'s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bot.errors import ConfigError
from bot.models import (
    Budget,
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
    database_url: str | None = field(default=None, repr=False)  # may carry a password
    dyno: str | None = None  # set by Heroku on every dyno (its disk is wiped on restart)

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
            database_url=reader.database_url("DATABASE_URL"),
            dyno=reader.optional_text("DYNO"),
        )
        if reader.problems:
            raise ConfigError(reader.problems)
        return settings

    @property
    def database(self) -> str:
        """Where the state lives: the PostgreSQL URL when DATABASE_URL is set, else the
        SQLite file at BOT_DB_PATH."""
        return self.database_url or self.db_path

    @property
    def database_name(self) -> str:
        """Where the state lives, said without the password."""
        if not self.database_url:
            return f"SQLite at {self.db_path}"
        parts = urlsplit(self.database_url)
        return f"PostgreSQL at {parts.hostname}:{parts.port or 5432}{parts.path}"

    @property
    def database_variable(self) -> str:
        """The variable that chose the store, for error messages."""
        return "DATABASE_URL" if self.database_url else "BOT_DB_PATH"

    def secrets(self) -> list[str]:
        """Every secret value, so logging can scrub them from any line."""
        values = (self.api_key, self.slack_bot_token, self.slack_app_token)
        more = (self.slack_signing_secret, self.webhook_secret, self.api_token)
        return [v for v in (*values, *more, *url_secrets_of(self.database_url)) if v]


def url_secrets_of(url: str | None) -> list[str]:
    return url_secrets(url) if url else []


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

    def optional_text(self, name: str) -> str | None:
        return self._get(name)

    def database_url(self, name: str) -> str | None:
        """A PostgreSQL URL (Heroku Postgres sets postgres://...); never echoed."""
        value = self._get(name)
        if value is None:
            return None
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = urlsplit("")
        if parts.scheme not in ("postgres", "postgresql") or not parts.netloc:
            self._bad(name, "must be a PostgreSQL URL like postgres://user:pass@host/db", None)
        return value

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
