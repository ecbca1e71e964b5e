"""Sparkplug B: real payloads built with the protobuf classes, sent by a paho-mqtt client into nats-server."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from fastiot.capture import MessageCapture
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.mqtt.devices import SparkplugEdgeNode
from fastiot.mqtt.sparkplug import SparkplugNodes, parse_subject, sparkplug_nodes
from fastiot.mqtt.sparkplug import sparkplug_b_pb2 as pb
from fastiot.nats_server import NatsServer
from fastiot.payloads import BatchDecoder, decode
from fastiot.subjects import LiveSubjectTree, SubjectIndex
from fastiot.subjects.tree import OFFLINE_MARK
from tests.mqtt_devices.conftest import MQTT_PASSWORD, MQTT_USER
from tests.waits import wait_until

Metric = pb.Payload.Metric


def _payload(*metrics: Metric, seq: int | None = None, timestamp: int = 1_700_000_000_000) -> bytes:
    payload = pb.Payload(timestamp=timestamp, metrics=list(metrics))
    if seq is not None:
        payload.seq = seq
    return payload.SerializeToString()


@pytest.fixture
def group() -> str:
    """A Sparkplug group of this test alone: the default state is the process's."""
    return f"g{uuid.uuid4().hex[:10]}"


def _publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(10)


async def test_ndata_sent_over_mqtt_decodes_to_the_metrics_named_by_the_birth_certificate(
    mqtt_broker: NatsBrokerConnection, mqtt_client: Callable[..., mqtt.Client], group: str
) -> None:
    capture = await MessageCapture(f"spBv1//0.{group}.>", mqtt_broker).start()
    client = mqtt_client()
    birth = _payload(
        Metric(name="bdSeq", alias=0, datatype=pb.Int64, long_value=0),
        Metric(name="Temperature", alias=1, datatype=pb.Float, float_value=20.0),
        Metric(name="Speed", alias=2, datatype=pb.Int32, int_value=(-5) & 0xFFFFFFFF),
        seq=0,
    )
    _publish(client, f"spBv1.0/{group}/NBIRTH/edge1", birth)
    data = _payload(
        Metric(alias=1, datatype=pb.Float, float_value=21.5, timestamp=1_700_000_000_500),
        Metric(alias=2, datatype=pb.Int32, int_value=(-7) & 0xFFFFFFFF),
        seq=1,
    )
    _publish(client, f"spBv1.0/{group}/NDATA/edge1", data)
    await capture.wait_for(2, timeout=10)
    await capture.stop()

    frame = capture.to_dataframe()
    assert list(frame["subject"]) == [f"spBv1//0.{group}.NBIRTH.edge1", f"spBv1//0.{group}.NDATA.edge1"]
    ndata = frame.iloc[1]
    # Columns a user charts: the values by metric name, though NDATA carried only the aliases.
    assert ndata["values.Temperature"] == 21.5 and ndata["values.Speed"] == -7
    assert ndata["seq"] == 1 and ndata["message_type"] == "NDATA" and ndata["node"] == "edge1"

    decoded = decode(data, subject=f"spBv1//0.{group}.NDATA.edge1")
    assert decoded.kind == "sparkplug"
    temperature, speed = decoded.value["metrics"]
    assert temperature == {
        "name": "Temperature",
        "alias": 1,
        "datatype": "Float",
        "value": 21.5,
        "timestamp": 1_700_000_000_500,
    }
    assert (speed["name"], speed["datatype"], speed["value"]) == ("Speed", "Int32", -7)
    assert decoded.value["seq"] == 1 and decoded.value["timestamp"] == 1_700_000_000_000


async def test_device_aliases_come_from_dbirth_and_a_rebirth_replaces_them(
    mqtt_broker: NatsBrokerConnection, mqtt_client: Callable[..., mqtt.Client], group: str
) -> None:
    index = SubjectIndex(f"spBv1//0.{group}.>", mqtt_broker)
    await index.start()
    client = mqtt_client()
    _publish(client, f"spBv1.0/{group}/NBIRTH/edge1", _payload(seq=0))
    dbirth = _payload(Metric(name="Pressure", alias=7, datatype=pb.Double, double_value=1.0), seq=1)
    _publish(client, f"spBv1.0/{group}/DBIRTH/edge1/pump1", dbirth)
    ddata = f"spBv1//0.{group}.DDATA.edge1.pump1"
    _publish(
        client, f"spBv1.0/{group}/DDATA/edge1/pump1", _payload(Metric(alias=7, double_value=4.25), seq=2)
    )
    await index.wait_for(3, timeout=10)
    # Looked at first, before anybody decoded the births: the index decodes them to name the aliases.
    assert index.last(ddata).value["values"] == {"Pressure": 4.25}

    rebirth = _payload(
        Metric(name="Flow", alias=7, datatype=pb.Double, double_value=0.0), seq=0, timestamp=1_700_000_001_000
    )
    _publish(client, f"spBv1.0/{group}/DBIRTH/edge1/pump1", rebirth)
    _publish(client, f"spBv1.0/{group}/DDATA/edge1/pump1", _payload(Metric(alias=7, double_value=9.5), seq=1))
    await index.wait_for(5, timeout=10)
    assert index.last(ddata).value["values"] == {"Flow": 9.5}
    await index.stop()


async def test_a_death_certificate_as_last_will_marks_the_node_offline_in_the_browser(
    mqtt_server: NatsServer, mqtt_broker: NatsBrokerConnection, group: str
) -> None:
    index = SubjectIndex(f"spBv1//0.{group}.>", mqtt_broker)
    await index.start()
    tree = LiveSubjectTree(index)
    port = mqtt_server.mqtt_port or 0
    node = SparkplugEdgeNode(
        "edge1", "127.0.0.1", port, group=group, username=MQTT_USER, password=MQTT_PASSWORD
    )
    node.connect()
    node.publish(node.tick())
    await index.wait_for(4, timeout=10)  # NBIRTH, DBIRTH, NDATA, DDATA
    ddata = f"spBv1//0.{group}.DDATA.edge1.pump1"

    def value_of(subject: str) -> str:
        tree.sync(0.0, limit=None)
        tree.reveal(subject)
        return tree.row(tree.nodes[subject], 0.0).value

    assert not value_of(ddata).startswith(OFFLINE_MARK)
    assert sparkplug_nodes().online(ddata) is True
    # A power cut: no DISCONNECT, so the server publishes the node's will, its NDEATH.
    node.disconnect(clean=False)
    await wait_until(lambda: f"spBv1//0.{group}.NDEATH.edge1" in index, 10, "the NDEATH will")
    assert value_of(ddata).startswith(OFFLINE_MARK), "the node's device shows offline"
    assert value_of(f"spBv1//0.{group}.NDATA.edge1").startswith(OFFLINE_MARK)
    assert sparkplug_nodes().online(f"spBv1//0.{group}.NBIRTH.edge1") is False

    # The node comes back with the next bdSeq: its birth makes it online again.
    back = SparkplugEdgeNode(
        "edge1", "127.0.0.1", port, group=group, username=MQTT_USER, password=MQTT_PASSWORD
    )
    back.bd_seq = 1
    back.connect()
    await index.wait_for(7, timeout=10)
    try:
        assert not value_of(ddata).startswith(OFFLINE_MARK)
    finally:
        back.disconnect()
        await index.stop()


def test_births_and_deaths_count_by_bdseq_whatever_order_they_are_decoded_in() -> None:
    birth = _payload(Metric(name="bdSeq", datatype=pb.Int64, long_value=3), seq=0, timestamp=100)
    # The will is made when the node connects, before its birth: an older timestamp, the same bdSeq.
    death = _payload(Metric(name="bdSeq", datatype=pb.Int64, long_value=3), timestamp=90)
    for order in ([birth, death], [death, birth]):
        nodes = SparkplugNodes()
        for data in order:
            kind = "NBIRTH" if data is birth else "NDEATH"
            nodes.decode(data, f"spBv1//0.plant.{kind}.edge1")
        assert nodes.online("spBv1//0.plant.NDATA.edge1") is False
        next_birth = _payload(Metric(name="bdSeq", datatype=pb.Int64, long_value=4), seq=0, timestamp=200)
        nodes.decode(next_birth, "spBv1//0.plant.NBIRTH.edge1")
        assert nodes.online("spBv1//0.plant.NDATA.edge1") is True
        assert [(s.node, s.online) for s in nodes.status()] == [("edge1", True)]


def test_a_bdseq_used_again_after_256_sessions_is_a_new_session() -> None:
    nodes = SparkplugNodes()

    def session(bd_seq: int, at: int, *, dies: bool) -> None:
        seq = Metric(name="bdSeq", datatype=pb.Int64, long_value=bd_seq)
        if dies:  # the will is made when the node connects, just before its birth
            nodes.decode(_payload(seq, timestamp=at - 1), "spBv1//0.plant.NDEATH.edge1")
        nodes.decode(_payload(seq, seq=0, timestamp=at), "spBv1//0.plant.NBIRTH.edge1")

    session(0, 100, dies=True)
    assert nodes.online("spBv1//0.plant.NDATA.edge1") is False
    session(1, 200, dies=False)
    session(0, 300, dies=False)  # bdSeq 0 again: the death of the first session is not this one's
    assert nodes.online("spBv1//0.plant.NDATA.edge1") is True


def test_values_of_every_kind_of_metric_decode_to_python_values() -> None:
    dataset = pb.Payload.DataSet(num_of_columns=2, columns=["a", "b"], types=[pb.Int32, pb.String])
    dataset.rows.add(elements=[pb.Payload.DataSet.DataSetValue(int_value=1), {"string_value": "x"}])
    metrics = [
        Metric(name="i8", datatype=pb.Int8, int_value=(-3) & 0xFFFFFFFF),
        Metric(name="i64", datatype=pb.Int64, long_value=(-9) & 0xFFFFFFFFFFFFFFFF),
        Metric(name="u64", datatype=pb.UInt64, long_value=2**63 + 1),
        Metric(name="text", datatype=pb.String, string_value="läuft"),
        Metric(name="on", datatype=pb.Boolean, boolean_value=True),
        Metric(name="nothing", datatype=pb.Float, is_null=True),
        Metric(name="floats", datatype=pb.FloatArray, bytes_value=struct.pack("<2f", 1.5, -2.0)),
        Metric(name="names", datatype=pb.StringArray, bytes_value=b"ab\0cd\0"),
        Metric(name="table", datatype=pb.DataSet, dataset_value=dataset),
    ]
    values = SparkplugNodes().decode(_payload(*metrics, seq=5))["values"]
    assert values == {
        "i8": -3,
        "i64": -9,
        "u64": 2**63 + 1,
        "text": "läuft",
        "on": True,
        "nothing": None,
        "floats": [1.5, -2.0],
        "names": ["ab", "cd"],
        "table": {"columns": ["a", "b"], "types": ["Int32", "String"], "rows": [[1, "x"]]},
    }


def test_what_is_no_sparkplug_payload_decodes_as_before() -> None:
    # Sparkplug 3.0's host application STATE message is JSON, on spBv1.0/STATE/<host>.
    state = decode(b'{"online": true, "timestamp": 1}', subject="spBv1//0.STATE.scada")
    assert (state.kind, state.value) == ("json", {"online": True, "timestamp": 1})
    assert decode(b"hello", subject="spBv1//0.plant.NDATA.edge1").kind == "text"
    assert parse_subject("tele.tasmota_1.SENSOR") is None


def test_captures_of_everything_keep_unpacking_msgpack_first_and_still_decode_sparkplug() -> None:
    # The default Sparkplug decoder must not put every capture of ">" on the slow path.
    decode_value = BatchDecoder(None, pattern=">")
    assert decode_value.msgpack_first
    data = _payload(Metric(name="rpm", datatype=pb.UInt32, int_value=1200), seq=0)
    decoded: Any = decode_value(data, "spBv1//0.plant.NDATA.edge2")
    assert decoded.kind == "sparkplug" and decoded.value["values"] == {"rpm": 1200}
