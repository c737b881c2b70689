"""Budget wording: Slack posts for threshold and forecast events, and the `/usage budget`
table. Pure functions of the JSON `budget.as_json` gives, so stored posts render the
same after a restart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from bot.messages.reports import sparkline, table

CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def credits(amount: float) -> str:
    return f"{amount:,.0f}"


def money(amount: float, state: Mapping[str, Any]) -> str:
    """Credits as money when the budget has a price: ' ($1,234.50)', else ''."""
    price = state.get("credit_price")
    if not price:
        return ""
    currency = str(state.get("currency") or "USD")
    value = amount * float(price)
    sign = CURRENCY_SIGNS.get(currency)
    return f" ({sign}{value:,.2f})" if sign else f" ({value:,.2f} {currency})"


def scope(state: Mapping[str, Any]) -> str:
    parts = [f"{key} {value}" for key, value in state["scope"].items() if key != "account"]
    return ", ".join(parts) or "the account"


def day(iso: str | None) -> str:
    return date.fromisoformat(iso).strftime("%a %d %b") if iso else "-"


def forecast_line(state: Mapping[str, Any]) -> str:
    forecast = state.get("forecast")
    if not forecast:
        return "Forecast: not enough data yet."
    line = (
        f"Forecast for {state['period']['label']}: {credits(forecast['projected_credits'])}"
        f"{money(forecast['projected_credits'], state)} "
        f"(80%: {credits(forecast['low_credits'])}-{credits(forecast['high_credits'])}, "
        f"{forecast['method']})"
    )
    reached = forecast.get("limit_reached_on")
    if reached and state["spent_credits"] < state["limit_credits"]:
        line += f"; the limit would be reached on {day(reached)}"
    return line + "."


def spent_line(state: Mapping[str, Any]) -> str:
    spent, limit = state["spent_credits"], state["limit_credits"]
    line = (
        f"{credits(spent)}{money(spent, state)} of {credits(limit)}{money(limit, state)} "
        f"credits used ({state['used_percent']:.0f}%) in {state['period']['label']} "
        f"({state['period']['timezone']})."
    )
    note = estimate_note(state)
    return f"{line} {note}" if note else line


def from_summary(state: Mapping[str, Any]) -> bool:
    """Can the summary speak for this scope (the account or a model)?"""
    return set(state["scope"]) <= {"account", "model"}


def estimate_note(state: Mapping[str, Any]) -> str:
    """Why the spend is estimated, when a known events gap falls in the period."""
    if not state.get("estimated"):
        return ""
    if from_summary(state):
        return (
            "Estimated: events were lost in a gap this period; the summary's count fills in "
            "their credits."
        )
    return (
        "Estimated, probably low: events were lost in a gap this period and the summary "
        "has no figures for this scope."
    )


def event_text(events: Sequence[Mapping[str, Any]], state: Mapping[str, Any]) -> str:
    """The Slack message for one budget event, or for thresholds crossed together."""
    name = f"*{state['budget']}* ({scope(state)})"
    event = events[-1]
    if event["kind"] == "threshold":
        thresholds = [float(e["threshold"]) for e in events]
        icon = ":rotating_light:" if max(thresholds) >= 100 else ":money_with_wings:"
        head = f"{icon} Budget {name} passed {_and([f'{t:g}%' for t in thresholds])} of its limit."
    elif event["state"] == "firing":
        head = (
            f":crystal_ball: Budget {name} is on course to pass its limit by the end of "
            f"{state['period']['label']}"
        )
        reached = (state.get("forecast") or {}).get("limit_reached_on")
        head += f", around {day(reached)}." if reached else "."
    elif event["period"] != state["period"]["label"]:
        head = f":white_check_mark: Budget {name}: period {event['period']} has ended."
    else:
        head = f":white_check_mark: Budget {name} is back under its limit in the forecast."
    daily = [total for _, total in state.get("daily_credits", [])]
    spark = f"\nCredits per day: {sparkline(daily)}" if len(daily) > 1 else ""
    return f"{head}\n{spent_line(state)}\n{forecast_line(state)}{spark}"


def _and(items: Sequence[str]) -> str:
    """'50%', '50% and 80%', '50%, 80% and 100%'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def budgets_report(states: Sequence[Mapping[str, Any]], freshness: str) -> str:
    """`/usage budget`: every budget's spend to date and forecast."""
    if not states:
        return (
            "No budgets configured. Add a `budgets:` section to rules.yaml "
            "(see the README: a limit per day, week or month, per model, segment or customer)."
        )
    rows = []
    for state in states:
        forecast = state.get("forecast") or {}
        projected = forecast.get("projected_credits")
        rows.append(
            [
                state["budget"],
                scope(state),
                state["period"]["label"],
                spent_cell(state),
                credits(state["limit_credits"]),
                f"{state['used_percent']:.0f}%",
                credits(projected) if projected is not None else "-",
                day(forecast.get("limit_reached_on")) if projected is not None else "-",
            ]
        )
    header = ["budget", "scope", "period", "spent", "limit", "used", "forecast", "limit on"]
    text = f"Budgets ({freshness})\n" + table(header, rows)
    if any(state.get("estimated") for state in states):
        text += (
            "\n~ estimated: events were lost in a gap this period (the account and model "
            "figures include the summary's count of what it held; others may be low)."
        )
    return text


def spent_cell(state: Mapping[str, Any]) -> str:
    """Spent in the `/usage budget` table: '~' marks an estimate."""
    mark = "~" if state.get("estimated") else ""
    return mark + credits(state["spent_credits"])
