"""Sparkplug B: the decoder of ``spBv1.0/...`` payloads, registered by default, and the nodes' state.

Payloads on ``spBv1//0.>`` (the NATS subjects of MQTT topics ``spBv1.0/#``) decode to their metrics
(name, alias, datatype, value, timestamp) and the payload's ``seq``. Birth certificates (NBIRTH,
DBIRTH) name the aliases that later data messages use; death certificates (NDEATH, DDEATH) mark a
node or device offline (:meth:`SparkplugNodes.online`, shown by the subject browser).

The protobuf classes (:mod:`~fastiot.mqtt.sparkplug.sparkplug_b_pb2`) are generated from Eclipse
Tahu's ``sparkplug_b.proto`` (Eclipse Public License 2.0), shipped beside them.

Example:
    >>> from fastiot.payloads import decode
    >>> from fastiot.mqtt.sparkplug import sparkplug_b_pb2 as pb
    >>> data = pb.Payload(seq=3, metrics=[pb.Payload.Metric(name="rpm", datatype=pb.Int32, int_value=1200)])
    >>> decode(data.SerializeToString(), subject="spBv1//0.plant.NDATA.edge9").value["values"]
    {'rpm': 1200}
"""

from __future__ import annotations

from fastiot.mqtt.sparkplug.metrics import DATATYPES, datatype_name, payload_to_dict
from fastiot.mqtt.sparkplug.state import (
    SPARKPLUG_PATTERN,
    NodeStatus,
    SparkplugNodes,
    SparkplugTopic,
    learn_certificates,
    offline_mark,
    parse_subject,
    register_sparkplug_decoder,
    sparkplug_nodes,
)

__all__ = [
    "DATATYPES",
    "SPARKPLUG_PATTERN",
    "NodeStatus",
    "SparkplugNodes",
    "SparkplugTopic",
    "datatype_name",
    "learn_certificates",
    "offline_mark",
    "parse_subject",
    "payload_to_dict",
    "register_sparkplug_decoder",
    "sparkplug_nodes",
]
