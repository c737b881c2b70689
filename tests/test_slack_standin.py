"""The Slack Web API stand-in, driven by the real slack_sdk WebClient over loopback HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.error import HTTPError

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.standins.slack import UPLOAD, SlackStandIn

ALERT_META = {"event_type": "usage_alert", "event_payload": {"key": "failed-job-rate|pro"}}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(ts_start=1_700_000_000) as standin:
        yield standin


def client(
    slack: SlackStandIn,
    *,
    timeout: float = 5,
    retry_handlers: list[RetryHandler] | None = None,
    default_retries: bool = False,
    token: str | None = "xoxb-test",
) -> WebClient:
    """A WebClient on the stand-in; no retry handlers unless asked (deterministic)."""
    handlers = None if default_retries else (retry_handlers or [])
    return WebClient(
        token=token,
        base_url=slack.url,
        timeout=timeout,  # type: ignore[arg-type]  # a float works at runtime
        retry_handlers=handlers,
    )


def slack_error(call: Any, *args: Any, **kwargs: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call(*args, **kwargs)
    return info.value


# --- basics ------------------------------------------------------------------------------


def test_url_auth_and_unknown_method(slack: SlackStandIn) -> None:
    assert slack.url.startswith("http://127.0.0.1:") and slack.url.endswith("/api/")
    me = client(slack).auth_test()
    assert (me["user_id"], me["bot_id"], me["team_id"], me["user"]) == (
        "U0BOT",
        "B0BOT",
        "T0TEAM",
        "usage-bot",
    )
    assert slack.requests[0].params == {}  # the token is never recorded
    bad = slack_error(client(slack, token="xoxb-wrong").auth_test)
    assert bad.response["error"] == "invalid_auth"
    assert slack_error(client(slack, token=None).auth_test).response["error"] == "not_authed"
    unknown = slack_error(client(slack).api_call, "chat.unfurlEverything")
    assert unknown.response["error"] == "unknown_method"


def test_post_resolves_channels_and_ts_is_a_counter(slack: SlackStandIn) -> None:
    c = client(slack)
    first = c.chat_postMessage(channel="#usage-alerts", text="one")
    second = c.chat_postMessage(channel="C0ALERTS", text="two")
    third = c.chat_postMessage(channel="usage-alerts", text="three")
    assert first["channel"] == second["channel"] == third["channel"] == "C0ALERTS"
    assert [first["ts"], second["ts"], third["ts"]] == [
        "1700000000.000100",
        "1700000000.000200",
        "1700000000.000300",
    ]
    assert first["message"]["bot_id"] == "B0BOT" and first["message"]["text"] == "one"
    missing = slack_error(c.chat_postMessage, channel="#nope", text="x")
    assert missing.response["error"] == "channel_not_found"

    ops = slack.add_channel("#ops", member=False)
    assert ops.startswith("C") and slack.channel_id("#ops") == ops
    outside = slack_error(c.chat_postMessage, channel="#ops", text="x")
    assert outside.response["error"] == "not_in_channel"
    slack.set_member("#ops", True)
    assert c.chat_postMessage(channel="#ops", text="x")["channel"] == ops
    assert [m.text for m in slack.messages("#usage-alerts")] == ["one", "two", "three"]


def test_json_and_form_bodies_are_both_accepted(slack: SlackStandIn) -> None:
    c = client(slack)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*failing*"}}]
    c.chat_postMessage(channel="#usage-alerts", text="json", blocks=blocks, metadata=ALERT_META)
    # form-encoded, as other clients (and curl) send it: nested values are JSON strings
    import json

    c.api_call(
        "chat.postMessage",
        params={
            "channel": "C0ALERTS",
            "text": "form",
            "blocks": json.dumps(blocks),
            "metadata": json.dumps(ALERT_META),
            "unfurl_links": False,
        },
    )
    c.conversations_history(channel="C0ALERTS")
    kinds = {r.method + ":" + r.params.get("text", ""): r.content_type for r in slack.requests}
    assert kinds["chat.postMessage:json"].startswith("application/json")
    assert kinds["chat.postMessage:form"] == "application/x-www-form-urlencoded"
    assert kinds["conversations.history:"] == "application/x-www-form-urlencoded"
    stored = slack.messages("C0ALERTS")
    assert [m.blocks for m in stored] == [blocks, blocks]
    assert [m.metadata for m in stored] == [ALERT_META, ALERT_META]
    assert stored[1].params["unfurl_links"] == "0"  # slack_sdk sends booleans as 0/1


# --- threads, history, updates -------------------------------------------------------------


def test_thread_replies_come_parent_first(slack: SlackStandIn) -> None:
    c = client(slack)
    parent = c.chat_postMessage(channel="#usage-alerts", text="alert", metadata=ALERT_META)
    ch, ts = parent["channel"], parent["ts"]
    c.chat_postMessage(channel=ch, thread_ts=ts, text="req_1 job_1")
    c.chat_postMessage(channel=ch, thread_ts=ts, text="req_2 job_2")
    replies = c.conversations_replies(channel=ch, ts=ts)["messages"]
    assert [m["text"] for m in replies] == ["alert", "req_1 job_1", "req_2 job_2"]
    assert replies[0]["reply_count"] == 2 and replies[0]["thread_ts"] == ts
    assert all(m["thread_ts"] == ts for m in replies[1:])
    assert "metadata" not in replies[0]
    with_meta = c.conversations_replies(channel=ch, ts=ts, include_all_metadata=True)
    assert with_meta["messages"][0]["metadata"] == ALERT_META

    assert [m.text for m in slack.thread(ch, ts)] == ["alert", "req_1 job_1", "req_2 job_2"]
    (top,) = slack.messages("#usage-alerts")
    assert [r.text for r in top.replies] == ["req_1 job_1", "req_2 job_2"]
    lost = slack_error(c.chat_postMessage, channel=ch, thread_ts="1600000000.000001", text="x")
    assert lost.response["error"] == "thread_not_found"
    gone = slack_error(c.conversations_replies, channel=ch, ts="1600000000.000001")
    assert gone.response["error"] == "thread_not_found"


def test_history_is_newest_first_with_metadata_only_on_request(slack: SlackStandIn) -> None:
    c = client(slack)
    a = c.chat_postMessage(channel="#usage-alerts", text="a")
    b = c.chat_postMessage(channel="#usage-alerts", text="b", metadata=ALERT_META)
    c.chat_postMessage(channel="C0ALERTS", thread_ts=a["ts"], text="a-reply")
    c.chat_postMessage(channel="C0ALERTS", thread_ts=a["ts"], text="shout", reply_broadcast=True)
    c.chat_postMessage(channel="#usage-alerts", text="c")

    plain = c.conversations_history(channel="C0ALERTS")
    assert [m["text"] for m in plain["messages"]] == ["c", "shout", "b", "a"]
    assert plain["has_more"] is False
    assert not any("metadata" in m for m in plain["messages"])
    assert plain["messages"][1]["subtype"] == "thread_broadcast"
    assert plain["messages"][3]["reply_count"] == 2

    full = c.conversations_history(channel="C0ALERTS", include_all_metadata=True)
    by_text = {m["text"]: m for m in full["messages"]}
    assert by_text["b"]["metadata"] == ALERT_META and "metadata" not in by_text["a"]
    assert [m.ts for m in slack.parents_with_metadata("usage_alert")] == [b["ts"]]
    assert slack.parents_with_metadata("something_else") == []

    by_name = slack_error(c.conversations_history, channel="#usage-alerts")
    assert by_name.response["error"] == "channel_not_found"  # Slack wants the ID here


def test_history_pages_through_next_cursor_and_ranges(slack: SlackStandIn) -> None:
    c = client(slack)
    ts = [c.chat_postMessage(channel="C0ALERTS", text=f"m{i}")["ts"] for i in range(5)]
    first = c.conversations_history(channel="C0ALERTS", limit=2)
    assert [m["text"] for m in first["messages"]] == ["m4", "m3"]
    assert first["has_more"] is True and first["response_metadata"]["next_cursor"]
    pages = [[m["text"] for m in page["messages"]] for page in first]  # slack_sdk's iterator
    assert pages == [["m4", "m3"], ["m2", "m1"], ["m0"]]

    window = c.conversations_history(channel="C0ALERTS", oldest=ts[1], latest=ts[3])
    assert [m["text"] for m in window["messages"]] == ["m2"]
    inclusive = c.conversations_history(
        channel="C0ALERTS", oldest=ts[1], latest=ts[3], inclusive=True
    )
    assert [m["text"] for m in inclusive["messages"]] == ["m3", "m2", "m1"]
    bad = slack_error(c.conversations_history, channel="C0ALERTS", cursor="garbage")
    assert bad.response["error"] == "invalid_cursor"


def test_update_edits_keeps_unnamed_fields_and_history(slack: SlackStandIn) -> None:
    c = client(slack)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "FIRING"}}]
    post = c.chat_postMessage(
        channel="#usage-alerts", text="firing", blocks=blocks, metadata=ALERT_META
    )
    ch, ts = post["channel"], post["ts"]
    upd = c.chat_update(channel=ch, ts=ts, text="resolved")
    assert upd["ts"] == ts and upd["message"]["edited"]["ts"] > ts
    msg = slack.message(ch, ts)
    assert (msg.text, msg.blocks, msg.metadata) == ("resolved", blocks, ALERT_META)

    resolved_meta = {"event_type": "usage_alert", "event_payload": {"state": "resolved"}}
    new_blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "RESOLVED"}}]
    c.chat_update(channel=ch, ts=ts, text="resolved", blocks=new_blocks, metadata=resolved_meta)
    msg = slack.message(ch, ts)
    assert msg.edited and [r.text for r in msg.revisions] == ["firing", "resolved", "resolved"]
    assert msg.revisions[0].blocks == blocks and msg.revisions[-1].metadata == resolved_meta
    assert msg.edits[0].edited_ts is not None and msg.revisions[0].edited_ts is None
    listed = c.conversations_history(channel=ch, include_all_metadata=True)["messages"]
    assert listed[0]["edited"] and listed[0]["metadata"] == resolved_meta
    assert len(slack.messages(ch)) == 1  # an edit is not a new message

    nope = slack_error(c.chat_update, channel=ch, ts="1600000000.000001", text="x")
    assert nope.response["error"] == "message_not_found"
    by_name = slack_error(c.chat_update, channel="#usage-alerts", ts=ts, text="x")
    assert by_name.response["error"] == "channel_not_found"
    human = slack.add_message("C0ALERTS", "hello from a person")
    theirs = slack_error(c.chat_update, channel=ch, ts=human, text="x")
    assert theirs.response["error"] == "cant_update_message"


def test_limits_answer_slack_errors_and_store_nothing(slack: SlackStandIn) -> None:
    c = client(slack)

    def section(n: int) -> dict[str, Any]:
        return {"type": "section", "text": {"type": "mrkdwn", "text": "x" * n}}

    c.chat_postMessage(channel="C0ALERTS", text="ok", blocks=[section(10)] * 50)
    c.chat_postMessage(channel="C0ALERTS", text="ok", blocks=[section(3000)])
    c.chat_postMessage(channel="C0ALERTS", text="y" * 40_000)
    too_many = slack_error(
        c.chat_postMessage, channel="C0ALERTS", text="x", blocks=[section(1)] * 51
    )
    assert too_many.response["error"] == "invalid_blocks"
    assert "/blocks" in too_many.response["response_metadata"]["messages"][0]
    too_long = slack_error(c.chat_postMessage, channel="C0ALERTS", text="x", blocks=[section(3001)])
    assert too_long.response["error"] == "invalid_blocks"
    assert "/blocks/0/text/text" in too_long.response["response_metadata"]["messages"][0]
    text = slack_error(c.chat_postMessage, channel="C0ALERTS", text="y" * 40_001)
    assert text.response["error"] == "msg_too_long"
    empty = slack_error(c.api_call, "chat.postMessage", json={"channel": "C0ALERTS"})
    assert empty.response["error"] == "no_text"
    meta = slack_error(
        c.chat_postMessage, channel="C0ALERTS", text="x", metadata={"event_payload": {}}
    )
    assert meta.response["error"] == "invalid_metadata_format"
    assert len(slack.messages("C0ALERTS")) == 3


# --- files ---------------------------------------------------------------------------------


def test_files_upload_v2_lands_in_the_thread(slack: SlackStandIn) -> None:
    c = client(slack)
    parent = c.chat_postMessage(channel="#usage-alerts", text="alert")
    ch, ts = parent["channel"], parent["ts"]
    done = c.files_upload_v2(
        content=PNG,
        filename="chart.png",
        title="Failure rate",
        channel=ch,
        thread_ts=ts,
        initial_comment="last 24h",
    )
    file_id = done["file"]["id"]
    assert done["files"][0]["id"] == file_id and done["file"]["mimetype"] == "image/png"
    assert [r.method for r in slack.requests[1:]] == [
        "files.getUploadURLExternal",
        UPLOAD,
        "files.completeUploadExternal",
    ]
    (stored,) = slack.files
    assert (stored.id, stored.name, stored.title, stored.content) == (
        file_id,
        "chart.png",
        "Failure rate",
        PNG,
    )
    assert (stored.channel, stored.thread_ts, stored.length, stored.completed) == (
        ch,
        ts,
        len(PNG),
        True,
    )
    thread = c.conversations_replies(channel=ch, ts=ts)["messages"]
    assert len(thread) == 2 and thread[1]["files"][0]["id"] == file_id
    assert thread[1]["text"] == "last 24h" and thread[1]["thread_ts"] == ts
    assert [m["text"] for m in c.conversations_history(channel=ch)["messages"]] == ["alert"]

    again = slack_error(
        c.files_completeUploadExternal, files=[{"id": file_id}], channel_id=ch, thread_ts=ts
    )
    assert again.response["error"] == "file_already_completed"
    by_name = slack_error(c.files_upload_v2, content=PNG, filename="x.png", channel="#usage-alerts")
    assert by_name.response["error"] == "channel_not_found"
    assert len(slack.thread(ch, ts)) == 2


def test_failed_upload_shares_nothing(slack: SlackStandIn) -> None:
    c = client(slack)
    parent = c.chat_postMessage(channel="C0ALERTS", text="alert")
    slack.server_error(UPLOAD, status=503)
    # slack_sdk lets urllib's HTTPError escape here (not SlackApiError / SlackRequestError)
    with pytest.raises(HTTPError) as info:
        c.files_upload_v2(
            content=PNG, filename="chart.png", channel="C0ALERTS", thread_ts=parent["ts"]
        )
    assert info.value.code == 503
    info.value.close()  # it holds the unread answer (and its socket) otherwise
    assert [f.completed for f in slack.files] == [False]
    assert len(slack.thread("C0ALERTS", parent["ts"])) == 1


# --- faults --------------------------------------------------------------------------------


def test_rate_limit_is_retried_after_retry_after(slack: SlackStandIn) -> None:
    slack.rate_limit("chat.postMessage", retry_after=3)
    refused = slack_error(client(slack).chat_postMessage, channel="C0ALERTS", text="x")
    assert refused.response.status_code == 429 and refused.response["error"] == "ratelimited"
    assert refused.response.headers["Retry-After"] == "3"

    slack.rate_limit("chat.postMessage", retry_after=1)
    patient = client(slack, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    assert patient.chat_postMessage(channel="C0ALERTS", text="once")["ok"]
    limited, accepted = slack.calls("chat.postMessage")[-2:]
    assert (limited.status, limited.fault, accepted.status) == (429, "rate_limited", 200)
    assert accepted.at - limited.at >= 1.0  # slack_sdk honoured Retry-After
    assert [m.text for m in slack.messages("C0ALERTS")] == ["once"]


def test_server_error_then_retry(slack: SlackStandIn) -> None:
    slack.server_error("chat.postMessage", status=503)
    failed = slack_error(client(slack).chat_postMessage, channel="C0ALERTS", text="x")
    assert failed.response.status_code == 503
    assert slack.messages("C0ALERTS") == []

    slack.server_error("chat.postMessage", status=500)
    retrying = client(slack, retry_handlers=[ServerErrorRetryHandler(max_retry_count=1)])
    assert retrying.chat_postMessage(channel="C0ALERTS", text="x")["ok"]
    assert [r.status for r in slack.calls("chat.postMessage")] == [503, 500, 200]
    assert len(slack.messages("C0ALERTS")) == 1


def test_error_fault_is_per_method_fifo_and_counted(slack: SlackStandIn) -> None:
    c = client(slack)
    slack.error("fatal_error", "chat.postMessage", times=2)
    slack.error("team_access_not_granted")  # any method, after the first
    assert slack.pending_faults() == [
        "error:fatal_error@chat.postMessage",
        "error:team_access_not_granted@*",
    ]
    assert slack_error(c.auth_test).response["error"] == "team_access_not_granted"
    for _ in range(2):
        failed = slack_error(c.chat_postMessage, channel="C0ALERTS", text="x")
        assert failed.response.status_code == 200 and failed.response["error"] == "fatal_error"
    assert c.chat_postMessage(channel="C0ALERTS", text="x")["ok"]
    assert slack.pending_faults() == []

    slack.error("fatal_error", times=None)  # until cleared
    for _ in range(3):
        slack_error(c.auth_test)
    slack.clear_faults()
    assert c.auth_test()["ok"]
    with pytest.raises(ValueError):
        slack.inject("meteor_strike")


def test_timeout_fault_without_and_with_commit(slack: SlackStandIn) -> None:
    impatient = client(slack, timeout=0.4)
    slack.timeout("chat.postMessage", seconds=10)
    with pytest.raises(TimeoutError):
        impatient.chat_postMessage(channel="C0ALERTS", text="lost")
    assert slack.messages("C0ALERTS") == []
    assert slack.calls("chat.postMessage")[0].status is None

    slack.timeout("chat.postMessage", seconds=10, commit=True)
    with pytest.raises(TimeoutError):
        impatient.chat_postMessage(channel="C0ALERTS", text="kept")
    assert [m.text for m in slack.messages("C0ALERTS")] == ["kept"]
    assert impatient.auth_test()["ok"]


def test_drop_fault_and_default_connection_retry(slack: SlackStandIn) -> None:
    slack.drop("auth.test")
    with pytest.raises(ConnectionError):
        client(slack).auth_test()
    slack.drop("auth.test")
    assert client(slack, default_retries=True).auth_test()["ok"]  # retried once by default
    assert [r.status for r in slack.calls("auth.test")] == [None, None, 200]


def test_post_then_drop_stores_once_while_the_client_sees_an_error(slack: SlackStandIn) -> None:
    c = client(slack)
    slack.post_then_drop()
    with pytest.raises(ConnectionError):
        c.chat_postMessage(channel="#usage-alerts", text="alert", metadata=ALERT_META)
    (stored,) = slack.messages("#usage-alerts")
    (call,) = slack.calls("chat.postMessage")
    assert (call.status, call.fault) == (None, "drop")
    # the bot can find its alert again from Slack alone, instead of posting it twice
    history = c.conversations_history(channel="C0ALERTS", include_all_metadata=True)
    assert [m["ts"] for m in history["messages"]] == [stored.ts]
    assert history["messages"][0]["metadata"] == ALERT_META
    assert [m.ts for m in slack.parents_with_metadata("usage_alert")] == [stored.ts]


def test_default_webclient_retries_a_dropped_post_into_a_duplicate(slack: SlackStandIn) -> None:
    """slack_sdk's default ConnectionErrorRetryHandler re-sends a POST whose answer was lost."""
    slack.post_then_drop()
    assert client(slack, default_retries=True).chat_postMessage(channel="C0ALERTS", text="a")["ok"]
    assert [m.text for m in slack.messages("C0ALERTS")] == ["a", "a"]


def test_outage_then_recovery(slack: SlackStandIn) -> None:
    c = client(slack)
    slack.outage(True)
    assert slack.is_down
    for call in (c.auth_test, lambda: c.chat_postMessage(channel="C0ALERTS", text="x")):
        assert slack_error(call).response.status_code == 503
    assert slack_error(c.files_upload_v2, content=PNG, filename="c.png").response.status_code == 503
    assert slack.messages("C0ALERTS") == [] and slack.files == []
    slack.outage(False)
    assert c.chat_postMessage(channel="C0ALERTS", text="after")["ok"]

    slack.outage(True, seconds=0.3)
    assert slack_error(c.auth_test).response.status_code == 503
    time.sleep(0.35)
    assert c.auth_test()["ok"] and not slack.is_down
    assert {r.fault for r in slack.requests if r.status == 503} == {"outage"}


def test_close_returns_promptly_during_a_timeout_fault() -> None:
    slack = SlackStandIn(ts_start=1_700_000_000).start()
    slack.timeout(seconds=30)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client(slack, timeout=20).auth_test()
        except BaseException as e:  # noqa: BLE001 - collected for the assertion below
            errors.append(e)

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 5
    while not slack.calls("auth.test") and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    slack.close()
    assert time.monotonic() - started < 1.5
    worker.join(timeout=5)
    assert not worker.is_alive() and isinstance(errors[0], ConnectionError)
    slack.close()  # idempotent
    with pytest.raises(RuntimeError):
        slack.start()


def test_transcript_for_the_demo(slack: SlackStandIn) -> None:
    c = client(slack)
    parent = c.chat_postMessage(channel="#usage-alerts", text="failed-job-rate firing")
    c.chat_postMessage(channel="C0ALERTS", thread_ts=parent["ts"], text="req_1")
    c.chat_update(channel="C0ALERTS", ts=parent["ts"], text="failed-job-rate resolved")
    assert slack.transcript("#usage-alerts").splitlines() == [
        "[1700000000.000100] failed-job-rate resolved (edited)",
        "    ↳ [1700000000.000200] req_1",
    ]
