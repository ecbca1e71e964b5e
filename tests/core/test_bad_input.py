"""Bad input on a live subscription: every bad message is an error with its subject, nothing else is lost.

Random bytes, truncated msgpack, msgpack of the wrong shape, JSON, empty and 1 MB payloads are sent
between good messages; oversize payloads and too long subjects are refused with clear exceptions
before they reach the server (nats-server would close the connection for them).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import msgpack
import nats.errors
import pydantic
import pytest

from fastiot.core.broker_connection import MAX_SUBJECT_BYTES, NatsBrokerConnection
from fastiot.core.data_models import Subject
from fastiot.core.serialization import serialize_to_bin
from fastiot.exceptions import (
    DeserializationError,
    PayloadTooLargeError,
    SubjectTooLongError,
)
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from tests.core.fault_helpers import Counter, record_figure

MAX_PAYLOAD = 2 * 1024 * 1024
ONE_MB = 1_000_000


@pytest.fixture(scope="module")
def server() -> Iterator[NatsServer]:
    """A server that accepts payloads up to 2 MiB (NATS's default is 1 MiB)."""
    with NatsServer(max_payload=MAX_PAYLOAD) as own:
        yield own


class Collector:
    """The good messages and the errors of one connection, in order."""

    def __init__(self) -> None:
        self.things: list[tuple[str, Thing]] = []
        self.errors: list[Exception] = []
        self.thing_count = Counter()
        self.error_count = Counter()

    async def on_thing(self, subject_name: str, thing: Thing) -> None:
        self.things.append((subject_name, thing))
        self.thing_count.add()

    async def on_error(self, error: Exception) -> None:
        self.errors.append(error)
        self.error_count.add()


@pytest.fixture
async def collected(server: NatsServer) -> tuple[NatsBrokerConnection, Collector]:
    collector = Collector()
    connection = await NatsBrokerConnection.connect(
        subscription_error_cb=collector.on_error, servers=server.url
    )
    yield connection, collector  # type: ignore[misc]
    await connection.close()


def thing(i: int, value: object = None) -> Thing:
    return Thing(machine="press_1", name="temp", value=i if value is None else value)


def bad_payloads() -> dict[str, tuple[bytes, type[Exception]]]:
    good = serialize_to_bin(Thing, thing(0))
    rng = random.Random(6)
    return {
        "random bytes": (bytes([0xC1]) + rng.randbytes(63), DeserializationError),
        "truncated msgpack": (good[: len(good) // 2], DeserializationError),
        "two msgpack values": (good + good, DeserializationError),
        "wrong schema (a dict)": (msgpack.packb({"foo": 1, "bar": [1, 2]}), pydantic.ValidationError),
        "wrong schema (a list)": (msgpack.packb([1, 2, 3]), pydantic.ValidationError),
        "wrong field types": (
            msgpack.packb({"machine": 1, "name": None, "value": 1, "timestamp": "yesterday"}),
            pydantic.ValidationError,
        ),
        "JSON instead of msgpack": (
            b'{"machine": "press_1", "name": "temp", "value": 1}',
            DeserializationError,
        ),
        "empty payload": (b"", DeserializationError),
        "1 MB of garbage": (b"\xc1" * ONE_MB, DeserializationError),
    }


async def test_bad_payloads_are_errors_with_their_subject_and_nothing_else_is_lost(
    collected: tuple[NatsBrokerConnection, Collector], request: pytest.FixtureRequest
) -> None:
    connection, collector = collected
    subject = Thing.get_subject("press_1.temp")
    subscription = await connection.subscribe(subject, collector.on_thing)
    await connection.flush()
    bad = bad_payloads()
    big_value = "x" * ONE_MB  # a valid Thing of about 1 MB
    sequence: list[tuple[str, bytes]] = []
    for i, (kind, (payload, _)) in enumerate(bad.items()):
        sequence.append(("good", serialize_to_bin(Thing, thing(i))))
        sequence.append((kind, payload))
    sequence.append(("good 1 MB", serialize_to_bin(Thing, thing(-1, big_value))))
    sequence.append(("good", serialize_to_bin(Thing, thing(len(bad)))))
    for _, payload in sequence:
        await connection.publish_raw(subject.name, payload)
    goods = [kind for kind, _ in sequence if kind.startswith("good")]
    await collector.thing_count.wait_for(len(goods))
    await collector.error_count.wait_for(len(bad))

    # Every good message arrived, in order, the 1 MB one complete.
    values = [t.value for _, t in collector.things]
    assert values[:-2] == list(range(len(bad))) and values[-1] == len(bad)
    assert values[-2] == big_value
    assert all(name == subject.name for name, _ in collector.things)
    # Every bad one is reported with its own error type, the subject and payload attached, in order.
    assert len(collector.errors) == len(bad)
    for error, (kind, (payload, cause_type)) in zip(collector.errors, bad.items(), strict=True):
        assert isinstance(error, cause_type), (kind, error)
        assert error.subject == subject.name  # type: ignore[attr-defined]
        assert error.payload == payload  # type: ignore[attr-defined]
        text = str(error)
        assert len(text) < 2000, f"the message for {kind} is {len(text)} characters long"
    assert subscription.received == len(sequence)  # type: ignore[attr-defined]
    assert subscription.errors == len(bad)  # type: ignore[attr-defined]
    assert connection.state == "connected"
    record_figure(request, "good messages delivered", f"{len(goods)} of {len(goods)}")
    record_figure(request, "bad messages reported", f"{len(collector.errors)} of {len(bad)}")


async def test_a_payload_above_max_payload_is_refused_with_a_clear_error(
    collected: tuple[NatsBrokerConnection, Collector], server: NatsServer
) -> None:
    connection, collector = collected
    subject = Thing.get_subject("press_1.temp")
    await connection.subscribe(subject, collector.on_thing)
    await connection.flush()
    assert connection.client.max_payload == MAX_PAYLOAD

    with pytest.raises(PayloadTooLargeError) as info:
        await connection.publish_raw(subject.name, b"\x00" * (MAX_PAYLOAD + 1))
    error = info.value
    assert isinstance(error, nats.errors.MaxPayloadError)  # code written for nats-py catches it too
    text = str(error)
    assert f"is {MAX_PAYLOAD + 1} bytes" in text and f"max_payload of {MAX_PAYLOAD} bytes" in text
    assert "NOT sent" in text and "Split it" in text and subject.name in text
    assert (error.subject, error.size, error.max_payload) == (subject.name, MAX_PAYLOAD + 1, MAX_PAYLOAD)

    # The same through the typed API: a Thing that serializes to more than max_payload.
    huge = thing(0, "y" * (MAX_PAYLOAD + 10))
    with pytest.raises(PayloadTooLargeError, match="max_payload"):
        await connection.publish(subject, huge)
    with pytest.raises(PayloadTooLargeError):
        await connection.request(Subject(name="v1.nobody", msg_cls=dict), {"blob": b"z" * (MAX_PAYLOAD + 1)})

    # The connection is unharmed and the next message arrives.
    await connection.publish(subject, thing(42))
    await collector.thing_count.wait_for(1)
    assert [t.value for _, t in collector.things] == [42]
    assert connection.state == "connected" and not collector.errors


UNUSUAL_NAMES = {
    "dashes": "v1.thing.press-1.temp-sensor",
    "unicode": "v1.thing.presse_ü.température_温度",
    "emoji": "v1.thing.🏭.🌡",
    "digits only": "v1.thing.1.2",
    "a long token": "v1.thing." + "long_" * 200,
    "many tokens": "v1.thing." + ".".join(f"t{i}" for i in range(300)),
    "near the limit": "v1.thing." + "z" * (MAX_SUBJECT_BYTES - len("v1.thing.")),
}


async def test_unusual_subject_tokens_are_delivered(
    collected: tuple[NatsBrokerConnection, Collector],
) -> None:
    connection, collector = collected
    await connection.subscribe(Subject(name="v1.thing.>", msg_cls=Thing), collector.on_thing)
    exact = Collector()
    for name in UNUSUAL_NAMES.values():
        await connection.subscribe(Subject(name=name, msg_cls=Thing), exact.on_thing)
    await connection.flush()
    for i, name in enumerate(UNUSUAL_NAMES.values()):
        await connection.publish(Subject(name=name, msg_cls=Thing), thing(i))
    await collector.thing_count.wait_for(len(UNUSUAL_NAMES))
    await exact.thing_count.wait_for(len(UNUSUAL_NAMES))
    assert [(name, t.value) for name, t in collector.things] == [
        (name, i) for i, name in enumerate(UNUSUAL_NAMES.values())
    ]
    assert sorted(t.value for _, t in exact.things) == list(range(len(UNUSUAL_NAMES)))
    assert not collector.errors and connection.state == "connected"


async def test_a_too_long_subject_is_refused_and_the_connection_survives(
    collected: tuple[NatsBrokerConnection, Collector],
) -> None:
    """nats-server closes a connection whose protocol line exceeds 4 KiB, and nats-py then closes it for
    good, taking every subscription with it; so such subjects never leave the client."""
    connection, collector = collected
    await connection.subscribe(Thing.get_subject(">"), collector.on_thing)
    await connection.flush()
    too_long = Subject(name="v1.thing." + "x" * 5000, msg_cls=Thing)
    multibyte = Subject(name="v1.thing." + "ü" * (MAX_SUBJECT_BYTES // 2 + 1), msg_cls=Thing)  # bytes count
    for subject in (too_long, multibyte):
        with pytest.raises(SubjectTooLongError, match=f"below {MAX_SUBJECT_BYTES} bytes") as info:
            await connection.publish(subject, thing(0))
        assert isinstance(info.value, ValueError)
        with pytest.raises(SubjectTooLongError):
            await connection.subscribe(subject, collector.on_thing)
        with pytest.raises(SubjectTooLongError):
            await connection.publish_raw(subject.name, b"")
        with pytest.raises(SubjectTooLongError):
            await connection.subscribe_raw(subject.name, collector.on_error)  # type: ignore[arg-type]
    with pytest.raises(SubjectTooLongError):
        await connection.request(Subject(name=too_long.name, msg_cls=dict), {}, timeout=1)
    await connection.flush(2)  # a round trip: the server saw nothing it would close us for
    assert connection.state == "connected"
    await connection.publish(Thing.get_subject("after"), thing(1))
    await collector.thing_count.wait_for(1)


@pytest.mark.parametrize(
    "name", ["v1.thing.a b", "v1.thing.a\tb", "v1.thing.a\r\nPUB x 1", "v1..x", "v1.x.", ""]
)
def test_subjects_with_whitespace_or_empty_tokens_are_rejected_up_front(name: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="is not a NATS subject"):
        Subject(name=name, msg_cls=dict)
