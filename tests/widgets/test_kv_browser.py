"""KeyValueBrowser, headless: buckets, keys, values, history with changes, live updates, deletion."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from nats.js.kv import KeyValue

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot_widgets import KeyValueBrowser
from tests.waits import wait_for_trait, wait_until


@dataclass
class Kv:
    name: str
    kv: KeyValue


@pytest.fixture
async def bucket(broker: NatsBrokerConnection) -> AsyncIterator[Kv]:
    """A bucket of this test alone keeping 10 revisions per key, deleted after the test."""
    js = broker.client.jetstream()
    name = f"kvb_{uuid.uuid4().hex[:10]}"
    kv = await js.create_key_value(bucket=name, history=10)
    yield Kv(name, kv)
    try:
        await js.delete_key_value(name)
    except Exception:
        pass  # the test deleted it


async def browse(kv: Kv, broker: NatsBrokerConnection) -> KeyValueBrowser:
    browser = KeyValueBrowser(kv.name, connection=broker)
    await browser.wait_idle()
    assert browser.error == ""
    return browser


def packed(value: Any) -> bytes:
    return msgpack.packb(value)


async def test_lists_buckets_keys_and_decoded_values(bucket: Kv, broker: NatsBrokerConnection) -> None:
    await bucket.kv.put("press_1.threshold", packed({"threshold": 56.0, "unit": "degC"}))
    await bucket.kv.put("oven.mode", json.dumps({"mode": "eco"}).encode())
    await bucket.kv.put("raw", b"\xc1\x00\xff")

    browser = await browse(bucket, broker)

    assert bucket.name in browser.buckets and browser.bucket == bucket.name
    assert browser.bucket_keys == ["oven.mode", "press_1.threshold", "raw"]
    assert browser.watching == "watching"
    assert "3 entries" in browser.info_view.value
    assert repr(browser).startswith("KeyValueBrowser("), "a notebook can show it"

    await browser.show_key("press_1.threshold")
    assert browser.value == '{"threshold": 56.0, "unit": "degC"}'
    assert browser.revision > 0 and "press_1.threshold" in browser.value_view.value
    await browser.show_key("oven.mode")
    assert browser.value == '{"mode": "eco"}', "JSON values decode as payloads do"
    await browser.show_key("raw")
    assert browser.value.startswith("c100ff"), "what does not decode shows as hex with the reason"


async def test_a_bucket_keeping_one_revision_says_so_in_the_singular(broker: NatsBrokerConnection) -> None:
    js = broker.client.jetstream()
    name = f"kvb_{uuid.uuid4().hex[:10]}"
    kv = await js.create_key_value(bucket=name, history=1)
    try:
        await kv.put("only", packed(1))
        browser = await browse(Kv(name, kv), broker)
        assert "1 entry, 1 revision kept per key" in browser.info_view.value
        browser.close()
    finally:
        await js.delete_key_value(name)


async def test_history_shows_the_changes_between_revisions(bucket: Kv, broker: NatsBrokerConnection) -> None:
    key = "press_1.threshold"
    await bucket.kv.put(key, packed({"threshold": 56.0, "unit": "degC"}))
    await bucket.kv.put(key, packed({"threshold": 70.0, "unit": "degC"}))
    await bucket.kv.delete(key)
    await bucket.kv.put(key, packed({"threshold": 60.0}))
    browser = await browse(bucket, broker)

    browser.key_select.value = key
    await browser.wait_idle()

    assert [row["operation"] for row in browser.history] == ["PUT", "PUT", "DEL", "PUT"]
    assert [row["changes"] for row in browser.history] == [
        [["", "(absent)", '{"threshold": 56.0, "unit": "degC"}']],
        [["threshold", "56.0", "70.0"]],
        [["", '{"threshold": 70.0, "unit": "degC"}', "(deleted)"]],
        [["", "(absent)", '{"threshold": 60.0}']],
    ]
    assert browser.value == '{"threshold": 60.0}'
    assert all(text in browser.history_view.value for text in ("threshold", "56.0", "70.0", "(deleted)"))


async def test_follows_changes_live(bucket: Kv, broker: NatsBrokerConnection) -> None:
    await bucket.kv.put("a", packed({"v": 1}))
    browser = await browse(bucket, broker)
    await browser.show_key("a")

    revision = await bucket.kv.put("a", packed({"v": 2}))
    await wait_for_trait(browser, "revision", lambda r: r == revision)
    assert browser.value == '{"v": 2}'
    assert browser.history[-1]["changes"] == [["v", "1", "2"]]

    await bucket.kv.put("b", packed(1))
    await wait_for_trait(browser, "bucket_keys", lambda keys: keys == ["a", "b"])
    await bucket.kv.delete("b")
    await wait_for_trait(browser, "bucket_keys", lambda keys: keys == ["a"])

    await bucket.kv.delete("a")
    await wait_for_trait(browser, "value", lambda v: v == "")
    assert browser.history[-1]["operation"] == "DEL" and "has no value" in browser.value_view.value


async def test_a_bucket_deleted_while_shown_is_reported_and_the_browser_goes_on(
    bucket: Kv, broker: NatsBrokerConnection
) -> None:
    await bucket.kv.put("a", packed(1))
    browser = await browse(bucket, broker)
    await browser.show_key("a")
    js = broker.client.jetstream()
    other_name = f"kvb_{uuid.uuid4().hex[:10]}"
    other = await js.create_key_value(bucket=other_name)
    try:
        await other.put("x", packed({"y": 1}))

        await js.delete_key_value(bucket.name)

        await wait_for_trait(browser, "notice", lambda n: "was deleted" in n)
        assert bucket.name in browser.notice and browser.key != "a"
        await wait_until(lambda: bucket.name not in browser.buckets, what="the list to drop it")
        await browser.show_bucket(other_name)
        await browser.show_key("x")
        assert browser.value == '{"y": 1}' and browser.error == ""
    finally:
        await js.delete_key_value(other_name)


async def test_an_unknown_bucket_is_reported_and_another_one_shown(
    bucket: Kv, broker: NatsBrokerConnection
) -> None:
    browser = KeyValueBrowser("no_such_bucket", connection=broker)
    await browser.wait_idle()

    assert browser.notice == "there is no key-value bucket 'no_such_bucket' on this server"
    assert browser.bucket in browser.buckets and browser.watching == "watching"


async def test_close_stops_the_watch(bucket: Kv, broker: NatsBrokerConnection) -> None:
    browser = await browse(bucket, broker)
    assert browser.watching == "watching"
    await browser.stop()
    assert browser.watching == "stopped"
    browser.close()
