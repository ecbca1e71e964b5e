"""Timeline: the state at a time against the full DataFrame, boundaries, windows, steps, density."""

from __future__ import annotations

import logging
import random
import uuid

import numpy as np
import pandas as pd
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import InvalidRangeError, InvalidRecordingError, RecordingNotFoundError
from fastiot.history import Recording, Timeline
from fastiot.history.timeline import bin_edges
from fastiot.nats_server import NatsServer
from tests.history.conftest import publish
from tests.lockdown import connect_as


def _state(full: pd.DataFrame, t_ns: int) -> pd.DataFrame:
    """The answer at(t) must give, computed from the whole recording."""
    before = full[full["received_at"].astype("int64") <= t_ns]
    return before.drop_duplicates("subject", keep="last").sort_values("sequence").reset_index(drop=True)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("sequence").reset_index(drop=True)


async def _lifecycle_recording(conn: NatsBrokerConnection, name: str) -> Recording:
    """12 subjects, each active in its own stretch of the recording: some appear late, some go quiet early."""
    rec = await Recording.start(name, "v1.tl.>", connection=conn)
    rng = random.Random(19)
    spans = {f"v1.tl.m{k}.value": sorted(rng.sample(range(400), 2)) for k in range(12)}
    items: list[tuple[str, object]] = []
    for i in range(400):
        for subject, (first, last) in spans.items():
            if first <= i <= last and rng.random() < 0.08:
                items.append((subject, {"value": float(i), "n": i, "unit": "degC"}))
    for item in items:  # one by one: every message gets its own time, in order
        await publish(conn, [item])
    return rec


async def test_at_equals_the_full_dataframe_for_50_random_times(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await _lifecycle_recording(connection, name)
    full = await rec.to_dataframe()
    timeline = await Timeline.open(rec)
    times = full["received_at"].astype("int64").to_numpy()
    assert timeline.start_ns == times[0] and timeline.end_ns == times[-1]
    rng = random.Random(7)
    picks = [rng.randint(int(times[0]) - 1000, int(times[-1]) + 1000) for _ in range(40)]
    picks += [int(times[rng.randrange(len(times))]) for _ in range(10)]  # exactly at a message: included
    sizes = set()
    for t in picks:
        got = await timeline.at(t)
        expected = _state(full, t)
        sizes.add(len(expected))
        pd.testing.assert_frame_equal(_sorted(got), expected)
    assert len(sizes) > 3  # subjects appeared and went quiet along the way


async def test_boundaries_before_the_first_after_the_last_and_an_empty_filter(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await Recording.start(name, "v1.tl.>", connection=connection)
    for i in range(6):
        await publish(connection, [(f"v1.tl.s{i % 3}", {"value": float(i)})])
    full = await rec.to_dataframe()
    timeline = await Timeline.open(rec.name, connection=connection)
    first, last = (
        int(full["received_at"].astype("int64").iloc[0]),
        int(full["received_at"].astype("int64").iloc[-1]),
    )

    before = await timeline.at(first - 1)
    assert before.empty and list(before.columns) == ["received_at", "subject", "sequence"]
    assert (await timeline.at(first))["sequence"].tolist() == [1]
    after = await timeline.at(last + 10**12)
    pd.testing.assert_frame_equal(_sorted(after), _state(full, last))
    assert sorted(after["subject"]) == ["v1.tl.s0", "v1.tl.s1", "v1.tl.s2"]
    assert (await timeline.at(last, subjects=[])).empty
    only = await timeline.at(last, subjects="v1.tl.s1")
    assert only["subject"].tolist() == ["v1.tl.s1"] and only["value"].tolist() == [4.0]
    assert (await timeline.window(first, last, subjects=[])).empty
    assert (await timeline.density(4, subjects=[])).shape == (4, 0)


async def test_an_empty_recording_has_no_range_and_no_state(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await Recording.start(name, "v1.tl.>", connection=connection)
    timeline = await Timeline.open(rec)
    assert timeline.start is None and timeline.end is None
    assert (await timeline.at(pd.Timestamp.now(tz="UTC"))).empty
    assert int((await timeline.density(3)).sum().sum()) == 0


async def test_window_is_the_slice_of_the_full_dataframe(connection: NatsBrokerConnection, name: str) -> None:
    rec = await _lifecycle_recording(connection, name)
    full = await rec.to_dataframe()
    timeline = await Timeline.open(rec)
    times = full["received_at"].astype("int64")
    t0, t1 = int(times.iloc[5]), int(times.iloc[20])
    window = await timeline.window(t0, t1)
    pd.testing.assert_frame_equal(window, full[(times >= t0) & (times <= t1)].reset_index(drop=True))
    assert len(await timeline.window(t0, t1, max_rows=3)) == 3
    assert (await timeline.window(t1, t0)).empty
    # The same messages undecoded, for a view with its own buffer (a MessageTable's capture).
    messages = await timeline.window_messages(t0, t1)
    assert [(m.subject, m.sequence, m.time_ns) for m in messages] == list(
        zip(window["subject"], window["sequence"], window["received_at"].astype("int64"), strict=True)
    )
    assert len(await timeline.window_messages(t0, t1, max_rows=3)) == 3
    assert await timeline.window_messages(t1, t0) == [] and await timeline.window_messages(t0, t1, []) == []


async def test_step_walks_a_subject_both_ways_and_stops_at_its_ends(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await _lifecycle_recording(connection, name)
    full = await rec.to_dataframe()
    subject = full["subject"].value_counts().index[0]
    expected = full[full["subject"] == subject]["sequence"].tolist()
    timeline = await Timeline.open(rec)
    timeline.seek(timeline.start_ns - 1)
    forward = []
    while not (row := await timeline.step(subject, +1)).empty:
        forward.append(int(row["sequence"].iloc[0]))
        assert timeline.cursor_ns == int(row["received_at"].astype("int64").iloc[0])
    assert forward == expected
    backward = []
    while not (row := await timeline.step(subject, -1)).empty:
        backward.append(int(row["sequence"].iloc[0]))
    assert backward == expected[-2::-1]  # from the last one, back to the first
    with pytest.raises(InvalidRecordingError, match=r"\+1"):
        await timeline.step(subject, 2)


async def test_density_counts_every_message_once_per_group(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await _lifecycle_recording(connection, name)
    full = await rec.to_dataframe()
    timeline = await Timeline.open(rec)
    groups = ["v1.tl.m1.>", "v1.tl.*.value"]
    strip = await timeline.density(7, groups)
    assert list(strip.columns) == groups and len(strip) == 7
    assert int(strip["v1.tl.*.value"].sum()) == len(full)
    assert int(strip["v1.tl.m1.>"].sum()) == int((full["subject"] == "v1.tl.m1.value").sum())
    edges = bin_edges(timeline.start_ns, timeline.end_ns, 7)
    # Bins include their start, exclude their end: counted from the sorted times.
    expected = np.diff(np.searchsorted(full["received_at"].astype("int64").to_numpy(), edges))
    assert strip["v1.tl.*.value"].tolist() == expected.tolist()
    with pytest.raises(InvalidRecordingError, match="bins"):
        await timeline.density(0)


async def test_reading_through_consumers_gives_the_same_answers(
    connection: NatsBrokerConnection, name: str
) -> None:
    """What a user who may not turn on allow_direct gets: slower, the same."""
    rec = await _lifecycle_recording(connection, name)
    direct = await Timeline.open(rec)
    by_consumer = await Timeline.open(rec)
    by_consumer.direct = False
    middle = (direct.start_ns + direct.end_ns) // 2
    pd.testing.assert_frame_equal(_sorted(await by_consumer.at(middle)), _sorted(await direct.at(middle)))
    pd.testing.assert_frame_equal(await by_consumer.density(5), await direct.density(5))
    subject = (await direct.at(middle))["subject"].iloc[-1]
    direct.seek(middle)
    by_consumer.seek(middle)
    for step in (-1, 1, 1, -1):
        expected = await direct.step(subject, step)
        assert not expected.empty
        pd.testing.assert_frame_equal(await by_consumer.step(subject, step), expected)


async def test_an_older_stream_gets_allow_direct_when_opened(
    connection: NatsBrokerConnection, name: str
) -> None:
    jsm = connection.client.jsm()
    await jsm.add_stream(name=name, subjects=["v1.old.>"])
    await publish(connection, [("v1.old.a", {"value": 1.0})])
    assert not (await jsm.stream_info(name)).config.allow_direct
    timeline = await Timeline.open(name, connection=connection)
    assert timeline.direct and (await jsm.stream_info(name)).config.allow_direct
    assert (await timeline.at(timeline.end_ns))["value"].tolist() == [1.0]
    new = await Recording.start(f"{name}_new", "v1.new.>", connection=connection)
    assert (await jsm.stream_info(new.name)).config.allow_direct


async def test_more_subjects_than_one_answer_holds(connection: NatsBrokerConnection, name: str) -> None:
    """The server answers a multi_last with at most 1024 messages: the state is asked for in parts."""
    rec = await Recording.start(name, "v1.many.>", connection=connection)
    await publish(connection, [(f"v1.many.s{i}", {"value": float(i)}) for i in range(1100)])
    timeline = await Timeline.open(rec)
    state = await timeline.at(timeline.end_ns)
    assert len(state) == 1100 and state["subject"].is_unique


async def test_scrubbing_back_is_answered_from_the_cache(connection: NatsBrokerConnection, name: str) -> None:
    rec = await _lifecycle_recording(connection, name)
    timeline = await Timeline.open(rec, cache_size=2)
    middle = (timeline.start_ns + timeline.end_ns) // 2
    first = await timeline.at(middle)
    await rec.delete()  # nothing left to ask: only the cache can answer
    assert (await timeline.at(middle)) is first


async def test_bad_input_says_what_to_give(connection: NatsBrokerConnection, name: str) -> None:
    with pytest.raises(RecordingNotFoundError):
        await Timeline.open("nope", connection=connection)
    rec = await Recording.start(name, "v1.tl.>", connection=connection)
    timeline = await Timeline.open(rec)
    with pytest.raises(InvalidRangeError, match="datetime"):
        await timeline.at("yesterday")  # type: ignore[arg-type]
    with pytest.raises(InvalidRecordingError):
        await timeline.at(0, subjects="v1..x")


async def test_a_user_who_may_not_change_the_stream_reads_through_consumers(
    locked_down: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The viewer may read recordings but not update them: no allow_direct, a warning, the same answers."""
    name = f"tl_viewer_{uuid.uuid4().hex[:8]}"
    admin = await connect_as(locked_down, "admin")
    viewer = await connect_as(locked_down, "viewer")
    try:
        await admin.client.jsm().add_stream(name=name, subjects=[f"v1.thing.{name}.>"])
        await publish(admin, [(f"v1.thing.{name}.s{i % 2}", {"value": float(i)}) for i in range(6)])
        with caplog.at_level(logging.WARNING, logger="fastiot.history"):
            timeline = await Timeline.open(name, connection=viewer)
        assert not timeline.direct
        assert "nats stream edit" in caplog.text
        state = await timeline.at(timeline.end_ns)
        assert sorted(state["value"]) == [4.0, 5.0]
    finally:
        await admin.client.jsm().delete_stream(name)
        await viewer.close()
        await admin.close()
