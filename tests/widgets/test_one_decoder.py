"""One decoder everywhere: a message reads the same in the SubjectBrowser, a MessageTable (its capture)
and a recording's DataFrame, headers included (a ``Content-Type`` decides as in ``payloads.decode``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fastiot.capture import MessageCapture
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.history import Recording
from fastiot.payloads import decode
from fastiot_widgets import MessageTable, SubjectBrowser
from tests.waits import wait_for_trait, wait_until

from .history_helpers import stream_name

FAST = 0.02
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
JSON = {"Content-Type": "application/json"}

# suffix -> (payload, headers, the value every view shows, its kind)
MESSAGES: dict[str, tuple[bytes, dict[str, str] | None, Any, str]] = {
    # JSON without headers; text where the header says text, though it parses as JSON too.
    "plain_json": (b"123", None, 123, "json"),
    "text_number": (b"123", TEXT, "123", "text"),
    "text_object": (b'{"a": 1}', TEXT, '{"a": 1}', "text"),
    "json_object": (b'{"a": 1}', JSON, {"a": 1}, "json"),
    "msgpack_with_headers": (pack({"a": 2}), {"origin": "test"}, {"a": 2}, "msgpack"),
}


def _row_value(frame: pd.DataFrame, subject: str) -> Any:
    """The payload of the row of ``subject`` as the frame holds it: ``value``, or the fields as a dict."""
    row = frame[frame["subject"] == subject].iloc[0]
    if "value" in frame.columns and not _missing(row["value"]):
        return _plain(row["value"])
    return {"a": _plain(row["a"])}


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (a column of numbers holds them so)."""
    return value.item() if isinstance(value, np.generic) else value


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


async def test_a_message_shows_the_same_value_in_the_browser_the_table_and_a_recording(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    browser = SubjectBrowser(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    table = MessageTable(MessageCapture(f"{prefix}.>", broker), refresh_interval=FAST)
    await browser.start()
    await table.start()
    recording = await Recording.start(stream_name(prefix), f"{prefix}.>", connection=broker)
    try:
        for suffix, (data, headers, _value, _kind) in MESSAGES.items():
            await broker.publish_raw(f"{prefix}.{suffix}", data, headers)
        await broker.flush()
        await browser.index.wait_for(len(MESSAGES), timeout=10)
        await wait_for_trait(table, "received", lambda n: n == len(MESSAGES))

        async def all_recorded() -> bool:
            return (await recording.info()).messages == len(MESSAGES)

        await wait_until(all_recorded, timeout=10, what="every message in the recording")
        recorded = await recording.to_dataframe()
        captured = table.to_dataframe()
        for suffix, (data, headers, value, kind) in MESSAGES.items():
            subject = f"{prefix}.{suffix}"
            expected = decode(data, subject=subject, headers=headers)
            assert (expected.kind, expected.value) == (kind, value), "the test's own expectation"
            browser.select(subject)
            detail = await wait_for_trait(
                browser.detail_view, "detail", lambda d, s=subject: d.get("path") == s
            )
            shown = detail["messages"][0]
            assert (shown["kind"], shown["error"]) == (kind, None), subject
            assert browser.index.last(subject).value == value, subject
            for name, frame in (("table", captured), ("recording", recorded)):
                got = _row_value(frame, subject)
                assert got == value and type(got) is type(value), f"{name}: {subject}: {got!r}"
        # The grid shows the row as the browser does: a click on the text row gives the text.
        text_subject = f"{prefix}.text_number"
        frame = table.grid.rows(0, len(MESSAGES))
        row_id = int(frame.index[frame["subject"].tolist().index(text_subject)])
        table.grid.selected_id = row_id
        assert table.selected_row["value"] == "123"
    finally:
        await recording.delete()
        await table.aclose()
        await browser.aclose()
