"""The `usage-bot` command line: builds objects from config, wires them, runs them.

Every subcommand of interface.md lives here as a thin veneer over the library; a
`BotError` becomes one clear message on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot import __version__
from bot.clock import stop_on_signals, utc_now
from bot.config import Settings, hook_urls, url_secrets
from bot.errors import BotError, ConfigError, StoreError
from bot.logs import configure as configure_logging
from bot.models import RuleSet
from bot.rules import load_ruleset

if TYPE_CHECKING:
    from bot.notify import Notifier
    from bot.store import Store

# Each command imports what it needs when it runs: `serve` (the web dyno) never loads
# the worker, numpy's detection stack or the Slack notifier.

log = logging.getLogger("bot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usage-bot",
        description="Usage alerting and anomaly detection for the RemoveBGVideo usage API.",
    )
    parser.add_argument("--version", action="version", version=f"usage-bot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="the worker loop (Procfile: worker)")
    p.add_argument("--cycles", type=_positive_int, help="stop after N poll cycles")

    sub.add_parser("serve", help="HTTP endpoint on PORT (Procfile: web)")

    sub.add_parser("migrate", help="apply the store's migrations and exit (Procfile: release)")

    p = sub.add_parser("demo", help="the whole job against a built-in simulated API")
    p.add_argument("--seconds", type=float, default=33.0, help="how long to run (real time)")
    p.add_argument("--speed", type=float, default=600.0, help="data seconds per real second")

    p = sub.add_parser("check", help="validate the rules file and the environment")
    p.add_argument("rules", nargs="?", help="rules file (default: BOT_RULES_PATH)")

    p = sub.add_parser("query", help="usage answers from the store, in the terminal")
    q = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    qs = q.add_parser("summary", help="totals and per-model table")
    qs.add_argument("--days", type=_days, default=7)
    qe = q.add_parser("events", help="the most recent events")
    qe.add_argument("--limit", type=_limit, default=20)
    qa = q.add_parser("alerts", help="open alerts and the latest transitions")
    qa.add_argument(
        "--stats",
        action="store_true",
        help="per rule: alerts, acknowledged, expected, noise, median time to acknowledge",
    )
    qa.add_argument("--days", type=_days, help="with --stats: the last N days (default 7)")
    qc = q.add_parser("coverage", help="finished jobs stored vs reported by the summary, per hour")
    qc.add_argument("--hours", type=_bounded(1, 168), default=24)
    qm = q.add_parser("model", help="one model's daily trend and its open alerts")
    qm.add_argument("name")
    qm.add_argument("--days", type=_days, default=7)
    qg = q.add_parser("segment", help="one customer segment's daily figures")
    qg.add_argument("name")
    qg.add_argument("--days", type=int, default=8, help="1..8 (from the stored events)")
    qb = q.add_parser("budget", help="spend to date and the forecast of every budget")
    qb.add_argument("--json", action="store_true", help="one JSON document, for automation")

    p = sub.add_parser("backtest", help="run the rules over recorded data; no Slack, no network")
    p.add_argument("--events", required=True, type=Path, help="events as JSON Lines")
    p.add_argument("--summary", type=Path, help="one summary response (JSON)")
    p.add_argument("--rules", help="rules file (default: BOT_RULES_PATH)")
    p.add_argument("--json", action="store_true", help="one JSON object per transition")

    p = sub.add_parser(
        "tune", help="replay a rule's stored alerts at other thresholds against their feedback"
    )
    p.add_argument("rule", help="the rule's name in the rules file")
    p.add_argument("--days", type=_days, default=7, help="the last N days of stored events")

    p = sub.add_parser("simulate", help="serve the simulated usage API on loopback")
    p.add_argument("--port", type=int, default=8099)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--speed", type=float, default=1.0, help="data seconds per real second")
    p.add_argument("--api-key", default="sim-key")
    return parser


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 (got {text!r})")
    return int(text)


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number {low}..{high} (got {text!r})")
        return int(text)

    return parse


_days = _bounded(1, 90)
_limit = _bounded(1, 100)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            return cmd_check(args.rules)
        if args.command == "demo":
            from bot.demo import run_demo

            return run_demo(seconds=args.seconds, speed=args.speed)
        if args.command == "simulate":
            return cmd_simulate(args.port, args.seed, args.speed, args.api_key)
        if args.command == "backtest":
            return cmd_backtest(args)
        settings = Settings.from_env()
        configure_logging(settings.log_level, settings.log_format, settings.secrets())
        if args.command == "run":
            return cmd_run(settings, args.cycles)
        if args.command == "migrate":
            return cmd_migrate(settings)
        if args.command == "serve":
            from bot.server import serve

            ruleset = load_ruleset(settings)
            return serve(settings, ruleset.budgets, ruleset.rules)
        if args.command == "query":
            return cmd_query(settings, args)
        if args.command == "tune":
            return cmd_tune(settings, args.rule, args.days)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"usage-bot: {problem}", file=sys.stderr)
        return 1
    except BotError as exc:
        print(f"usage-bot: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(f"unhandled command {args.command}")  # argparse prevents this


def cmd_check(rules: str | None) -> int:
    problems: list[str] = []
    settings = None
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        problems += exc.problems
    ruleset = None
    try:
        ruleset = load_ruleset(settings or Settings(), rules)
        hook_urls(ruleset.budgets)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"usage-bot check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    assert settings is not None and ruleset is not None
    names = ", ".join(rule.name for rule in ruleset.rules) or "none"
    budgets = ", ".join(budget.name for budget in ruleset.budgets) or "none"
    notifier = "Slack" if settings.slack_bot_token else "console (SLACK_BOT_TOKEN unset)"
    print(
        f"OK: {len(ruleset.rules)} rules ({names}); {len(ruleset.budgets)} budgets ({budgets}); "
        f"environment valid; alerts go to {notifier}; state in {settings.database_name}"
    )
    for warning in store_warnings(settings):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def store_warnings(settings: Settings) -> list[str]:
    """What the user should know about where state lives on this host."""
    warnings = []
    if settings.dyno and not settings.database_url:
        warnings.append(
            f"running on a Heroku dyno ({settings.dyno}) with SQLite: the dyno's disk is wiped "
            "on every restart (at least daily), and with it the event history spend rules "
            "judge against, the budget and digest marks, and the poll log; failure-rate "
            "baselines come back from the 90-day summary and open alert threads from Slack; "
            "attach Heroku Postgres (it sets DATABASE_URL) to keep them"
        )
    return warnings


def open_store(settings: Settings) -> Store:
    """The configured store, migrated; a store that cannot be opened (a wrong or
    unreachable DATABASE_URL, an unwritable BOT_DB_PATH) is one line naming the variable,
    never the password."""
    from bot.store import Store

    try:
        return Store(settings.database)
    except StoreError as exc:
        raise StoreError(
            f"{settings.database_variable}: cannot open the store ({settings.database_name}): {exc}"
        ) from None


def cmd_migrate(settings: Settings) -> int:
    """Apply the store's migrations (Heroku's release phase runs this before a deploy)."""
    for warning in store_warnings(settings):
        log.warning("%s", warning)
    store = open_store(settings)  # opening the store applies what is missing
    try:
        applied = store.migrations_applied()
    finally:
        store.close()
    print(f"store migrated: {settings.database_name}, {len(applied)} migrations ({applied[-1]})")
    return 0


def cmd_run(settings: Settings, cycles: int | None) -> int:
    from bot import hooks
    from bot.source import UsageClient, make_http_client
    from bot.worker import HookSettings, Worker, run

    ruleset = load_ruleset(settings)
    stop = threading.Event()
    stop_on_signals(stop)
    if not settings.api_key:
        log.warning("USAGE_API_KEY is unset: the usage API will answer 401")
    if not settings.slack_bot_token:
        log.warning("SLACK_BOT_TOKEN is unset: alerts go to the console (stdout)")
    every = settings.poll_seconds or ruleset.poll.events_every
    urls = hook_urls(ruleset.budgets)  # before anything starts: a missing URL stops us here
    if urls:  # a hook URL may carry a token: scrub it from every log line too
        hidden = [part for url in urls.values() for part in url_secrets(url)]
        configure_logging(settings.log_level, settings.log_format, [*settings.secrets(), *hidden])
    store = open_store(settings)
    socket_mode = None
    if settings.slack_app_token:  # /usage and the buttons without a public URL
        from bot.socket_mode import SocketModeTransport

        socket_mode = SocketModeTransport(
            settings, budgets=ruleset.budgets, rules=ruleset.rules
        ).start()  # own threads, own connections
    try:
        with (
            make_http_client(settings.api_base_url) as http,
            hooks.make_client() as hook_http,
        ):
            client = UsageClient(http, api_key=settings.api_key, sleep=stop.wait)
            worker = Worker(
                client=client,
                store=store,
                ruleset=ruleset,
                notifier=make_notifier(settings, ruleset, store),
                lease_seconds=max(1.0, 3 * every),  # a crashed worker's lease lapses soon
                hooks=HookSettings(urls, settings.webhook_secret, hook_http if urls else None),
                default_channel=settings.slack_channel,
            )
            log.info(
                "worker started: polling %s every %ss, state in %s",
                settings.api_base_url,
                every,
                settings.database_name,
            )
            try:
                ran = run(worker, every=every, stop=stop, cycles=cycles)
            finally:
                worker.close()
    finally:
        if socket_mode is not None:
            socket_mode.close()
        store.close()
    log.info("worker stopped after %d cycles", ran)
    return 0


def make_notifier(settings: Settings, ruleset: RuleSet, store: Store) -> Notifier:
    """Slack when a bot token is set, else the console."""
    from bot.notify import ConsoleNotifier, SlackNotifier, make_web_clients

    rules = {rule.name: rule for rule in ruleset.rules}
    if not settings.slack_bot_token:
        return ConsoleNotifier(rules)
    if not settings.slack_channel and any(rule.channel is None for rule in ruleset.rules):
        raise ConfigError("SLACK_CHANNEL: needed for rules that name no channel of their own")
    reader, poster = make_web_clients(settings.slack_bot_token, settings.slack_api_url)
    return SlackNotifier(
        reader=reader,
        poster=poster,
        store=store,
        rules=rules,
        default_channel=settings.slack_channel,
        mention=ruleset.mention,
        inhibit=ruleset.inhibit,
    )


def cmd_query(settings: Settings, args: argparse.Namespace) -> int:
    from bot import commands

    store = open_store(settings)
    try:
        now = utc_now()
        if args.what == "summary":
            print(commands.summary_text(store, args.days, now))
        elif args.what == "events":
            print(commands.events_text(store, args.limit, now))
        elif args.what == "alerts" and args.stats:
            print(commands.alert_stats_text(store, args.days or 7, now))
        elif args.what == "alerts":
            if args.days is not None:
                print("usage-bot: query alerts: --days goes with --stats", file=sys.stderr)
                return 2
            print(commands.alerts_text(store, now))
        elif args.what == "coverage":
            print(commands.coverage_text(store, now, args.hours))
        elif args.what in ("model", "segment"):
            # The slash command's own answer, so both say the same.
            rules = load_ruleset(settings).rules if args.what == "model" else ()
            reply = commands.handle_command(
                f"{args.what} {args.name} {args.days}", store=store, now=now, rules=rules
            )
            print(reply.plain(), file=sys.stderr if reply.correction else sys.stdout)
            return 1 if reply.correction else 0
        elif args.what == "budget":
            budgets = load_ruleset(settings).budgets
            if args.json:
                print(json.dumps(commands.budget_json(store, budgets, now), indent=2))
            else:
                print(commands.budget_text(store, budgets, now))
    finally:
        store.close()
    return 0


def cmd_tune(settings: Settings, name: str, days: int) -> int:
    """Replay a rule's stored events at a few thresholds around its own and print which
    keeps the alerts marked expected and drops those marked noise. Changes nothing."""
    from bot import tune
    from bot.messages import feedback as words

    rules = load_ruleset(settings).rules
    rule = next((r for r in rules if r.name == name), None)
    if rule is None:
        print(
            f"usage-bot: {words.unknown_rule_text(name, [r.name for r in rules])}", file=sys.stderr
        )
        return 1
    store = open_store(settings)
    try:
        found = tune.tune(store, rule, utc_now(), days)
    finally:
        store.close()
    if not found.expected + found.noise:
        print(f"usage-bot: {words.nothing_marked_text(name, days)}", file=sys.stderr)
        return 1
    rows = [
        (t.setting, t.alerts, t.expected_kept, t.noise_dropped, t.unlabelled) for t in found.trials
    ]
    marked = (found.expected, found.noise)
    print(words.tune_report(name, found.start, found.end, marked, found.current, rows))
    best, closest = found.suggestion(), found.closest()
    near = (closest.setting, closest.expected_kept, closest.noise_dropped)
    print(words.tune_suggestion(found.current, best.setting if best else None, near, marked))
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from bot import backtest, messages
    from bot.source import loads_strict

    ruleset = load_ruleset(Settings.from_env(), args.rules)
    summary = None
    if args.summary is not None:
        try:
            summary = loads_strict(args.summary.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise ConfigError(f"{args.summary}: cannot read a summary ({exc})") from exc
    if not args.events.exists():
        raise ConfigError(f"{args.events}: no such file")
    recording = backtest.load(ruleset.rules, args.events, summary)
    rules = {rule.name: rule for rule in ruleset.rules}
    for t in backtest.run(recording):
        if args.json:
            print(backtest.to_json(t))
        else:
            rule = rules[t.rule]
            print(messages.alert_text(t, rule.metric, rule.bucket))
    return 0


def cmd_simulate(port: int, seed: int, speed: float, api_key: str) -> int:
    from bot.standins.simulator import CompressedClock, Simulator

    start = datetime.now(UTC).replace(second=0, microsecond=0)
    sim = Simulator(start=start, clock=CompressedClock(start, speed), seed=seed, api_key=api_key)
    stop = threading.Event()
    stop_on_signals(stop)
    with sim.serve(port=port) as server:
        print(f"simulated usage API on {server.url} (X-Api-Key: {api_key}); Ctrl-C stops")
        stop.wait()
    return 0
