"""CallbackList: the one on_*(callback, remove=False) mechanism."""

from __future__ import annotations

import logging

import pytest

from fastiot._callbacks import CallbackList, StatefulCallbackList


def test_calls_in_order_and_keeps_a_duplicate_once() -> None:
    seen: list[tuple[str, int]] = []
    callbacks: CallbackList[[int]] = CallbackList("count")

    def first(n: int) -> None:
        seen.append(("first", n))

    def second(n: int) -> None:
        seen.append(("second", n))

    callbacks.register(first)
    callbacks.register(second)
    callbacks.register(first)
    callbacks(3)
    assert seen == [("first", 3), ("second", 3)]
    assert len(callbacks) == 2


def test_remove_and_removing_an_unknown_callback_does_nothing() -> None:
    seen: list[int] = []
    callbacks: CallbackList[[int]] = CallbackList("count")
    callbacks.register(seen.append)
    callbacks.register(print, remove=True)  # never registered: no error
    callbacks.register(seen.append, remove=True)
    callbacks(1)
    assert seen == []
    assert not callbacks


def test_bound_methods_compare_equal_so_remove_works() -> None:
    class Listener:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def on(self, state: str) -> None:
            self.seen.append(state)

    listener = Listener()
    callbacks: CallbackList[[str]] = CallbackList("state change")
    callbacks.register(listener.on)
    callbacks.register(listener.on, remove=True)
    callbacks("closed")
    assert listener.seen == []


def test_the_wrong_kind_is_rejected_when_registered() -> None:
    async def async_cb(n: int) -> None:
        pass

    def sync_cb(n: int) -> None:
        pass

    with pytest.raises(TypeError, match=r"plain function \(def \.\.\.\).*async_cb"):
        CallbackList[[int]]("count").register(async_cb)
    with pytest.raises(TypeError, match=r"async function \(async def \.\.\.\).*sync_cb"):
        CallbackList[[int]]("count", is_async=True).register(sync_cb)
    with pytest.raises(TypeError, match="callable"):
        CallbackList[[int]]("count").register(42)  # type: ignore[arg-type]


def test_a_failing_callback_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[int] = []
    callbacks: CallbackList[[int]] = CallbackList("count")

    def broken(n: int) -> None:
        raise ValueError("boom")

    callbacks.register(broken)
    callbacks.register(seen.append)
    with caplog.at_level(logging.ERROR, logger="fastiot.callbacks"):
        callbacks(7)
    assert seen == [7]
    assert "count callback" in caplog.text and "boom" in caplog.text


async def test_async_callbacks_are_awaited_and_failures_logged(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[int] = []
    callbacks: CallbackList[[int]] = CallbackList("message", is_async=True)

    async def broken(n: int) -> None:
        raise RuntimeError("bad")

    async def record(n: int) -> None:
        seen.append(n)

    callbacks.register(broken)
    callbacks.register(record)
    with caplog.at_level(logging.ERROR, logger="fastiot.callbacks"):
        await callbacks.call_async(5)
    assert seen == [5]
    assert "bad" in caplog.text


def test_a_stateful_list_keeps_one_state_per_callback_by_the_same_rules() -> None:
    made: list[object] = []

    def new_state(callback: object) -> list[int]:
        made.append(callback)
        return []

    callbacks: StatefulCallbackList[[int], list[int]] = StatefulCallbackList("count", new_state)
    seen: list[int] = []
    callbacks.register(seen.append)
    callbacks.state(seen.append).append(1)
    callbacks.register(seen.append)  # again: kept once, with its state
    callbacks.register(print)
    assert made == [seen.append, print]
    assert callbacks.states() == [[1], []]
    callbacks(5)
    assert seen == [5]
    callbacks.register(seen.append, remove=True)
    callbacks.register(seen.append, remove=True)  # not registered any more: no error
    assert seen.append not in callbacks and callbacks.states() == [[]]
    with pytest.raises(KeyError):
        callbacks.state(seen.append)


def test_a_stateful_list_rejects_the_wrong_kind_with_its_hint() -> None:
    async def async_cb(n: int) -> None:
        pass

    callbacks: StatefulCallbackList[[int], None] = StatefulCallbackList(
        "count", lambda cb: None, hint="start a task inside it"
    )
    with pytest.raises(TypeError, match=r"plain function \(def \.\.\.\), got .*async_cb: start a task"):
        callbacks.register(async_cb)
    assert not callbacks and callbacks.states() == []


def test_call_one_logs_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    callbacks: CallbackList[[int]] = CallbackList("count")

    def broken(n: int) -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="fastiot.callbacks"):
        callbacks.call_one(broken, 1)
    assert "count callback" in caplog.text and "boom" in caplog.text
