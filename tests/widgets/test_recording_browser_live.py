"""RecordingBrowser on a recording that still records: its numbers follow it (periodically, ⟳, delete)."""

from __future__ import annotations

import msgpack

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.history import Recording
from fastiot_widgets import RecordingBrowser
from tests.waits import wait_for_trait, wait_until
from tests.widgets.history_helpers import Recorded, make_recording, recorded

__all__ = ["make_recording", "recorded"]  # the fixtures, imported to be used here

SLOW = 3600.0  # an interval no test waits for: only ⟳ or a confirmation reads the numbers again


async def grow(recorded: Recorded, broker: NatsBrokerConnection, n: int) -> int:
    """Publish ``n`` more messages on ``<prefix>.a``, wait until they are recorded; the new total."""
    for i in range(n):
        await broker.publish_raw(f"{recorded.prefix}.a", msgpack.packb({"value": float(i)}))
    await broker.flush()
    total = recorded.total + n

    async def stored() -> bool:
        return (await recorded.recording.info(connection=broker)).messages == total

    await wait_until(stored, what=f"{total} messages recorded")
    return total


async def browse(recorded: Recorded, broker: NatsBrokerConnection, interval: float) -> RecordingBrowser:
    browser = RecordingBrowser(recorded.name, connection=broker)
    browser.refresh_interval = interval
    await browser.wait_idle()
    assert browser.error == "" and browser.info["messages"] == recorded.total
    return browser


async def test_the_numbers_of_a_running_recording_follow_it(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    browser = await browse(recorded, broker, 0.1)
    assert browser.is_following

    total = await grow(recorded, broker, 7)

    await wait_for_trait(browser, "info", lambda info: info.get("messages") == total)
    a = f"{recorded.prefix}.a"
    await wait_until(lambda: browser.subject_chooser.counts.get(a) == 3 + 7, what="the subject count")
    assert f"{total} messages" in browser.info_view.value
    assert (f"{a}  (10)", a) in browser.subject_select.options
    assert browser.error == ""


async def test_refresh_reads_the_numbers_again(recorded: Recorded, broker: NatsBrokerConnection) -> None:
    browser = await browse(recorded, broker, SLOW)

    total = await grow(recorded, broker, 4)
    browser.refresh_button.click()
    await browser.wait_idle()

    assert browser.info["messages"] == total
    assert f"{total} messages" in browser.info_view.value
    assert browser.subject_chooser.counts[f"{recorded.prefix}.a"] == 3 + 4


async def test_the_delete_confirmation_states_the_count_read_when_asked(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    browser = await browse(recorded, broker, SLOW)
    total = await grow(recorded, broker, 6)

    browser.delete_button.click()
    await browser.wait_idle()

    assert browser.delete_confirmation.confirming
    assert f"its {total} messages" in browser.delete_confirmation.text.value
    assert f"{total} messages" in browser.info_view.value, "the info beside it says the same"
    await Recording.open(recorded.name, connection=broker)  # nothing deleted by asking


async def test_a_stopped_recording_is_not_read_again(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    browser = await browse(recorded, broker, 0.1)
    assert browser.is_following

    await recorded.recording.stop(connection=broker)

    await wait_until(lambda: not browser.is_following, what="the browser to stop reading a stopped recording")
    assert browser.info["recording"] is False and "stopped" in browser.info_view.value


async def test_close_stops_following(recorded: Recorded, broker: NatsBrokerConnection) -> None:
    browser = await browse(recorded, broker, 0.1)
    task = browser._follow_task
    assert browser.is_following and task is not None

    browser.close()

    assert not browser.is_following
    await wait_until(task.done, what="the periodic read to end")
    assert task.cancelled()


async def test_plot_of_a_loaded_range_reads_a_24_hour_clock(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    browser = await browse(recorded, broker, SLOW)
    await browser.load()

    plot = browser.open_plot("value")

    axis = plot.figure.axes[0]
    assert axis.label == "time (UTC)" and axis.tick_format.startswith("%H:%M")
    assert "%I" not in axis.tick_format, "12-hour clock without AM/PM"
