"""Sparkplug B sessions: which edge nodes and devices are online, and their alias maps.

A Sparkplug B edge node announces its metrics in a birth certificate (NBIRTH, DBIRTH for each of its
devices), with a number (alias) for each; its data messages (NDATA, DDATA) then often carry only the
aliases. A death certificate (NDEATH, usually the MQTT last will; DDEATH) says it went offline.
:class:`SparkplugNodes` keeps that per node from the payloads it is shown, and the decoder registered
by default (``"sparkplug"`` on ``spBv1//0.>``, the NATS subjects of MQTT topics ``spBv1.0/...``) shows
it every payload it decodes, so the names in data messages are filled in and the subject browser can
mark a dead node offline.

Whether a node is online does not depend on the order payloads are decoded in: a death counts for the
birth with the same ``bdSeq`` (the will is prepared before the birth it belongs to, so timestamps
cannot tell), and a later birth (newer timestamp) brings the node back.

Example:
    >>> from fastiot.mqtt.sparkplug import sparkplug_nodes
    >>> sparkplug_nodes().online("spBv1//0.plant.NDATA.edge1") is None  # nothing seen yet
    True
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from fastiot.mqtt.sparkplug.metrics import payload_to_dict

__all__ = [
    "SPARKPLUG_PATTERN",
    "NodeStatus",
    "SparkplugNodes",
    "SparkplugTopic",
    "learn_certificates",
    "offline_mark",
    "parse_subject",
    "register_sparkplug_decoder",
    "sparkplug_nodes",
]

SPARKPLUG_PATTERN = "spBv1//0.>"
"""The NATS subjects of MQTT topics ``spBv1.0/#`` (nats-server turns the topic's ``.`` into ``//``)."""

MESSAGE_TYPES = ("NBIRTH", "NDEATH", "NDATA", "NCMD", "DBIRTH", "DDEATH", "DDATA", "DCMD")
_BIRTH_DEATH_SEQ = "bdSeq"


class SparkplugTopic(NamedTuple):
    """The parts of a Sparkplug B topic: ``spBv1.0/<group>/<message_type>/<node>[/<device>]``."""

    group: str
    message_type: str
    node: str
    device: str | None


def parse_subject(subject: str | None) -> SparkplugTopic | None:
    """The Sparkplug parts of a NATS subject, or ``None`` if it is no Sparkplug B message subject.

    Args:
        subject: A NATS subject such as ``spBv1//0.plant.NDATA.edge1.pump``.

    Returns:
        The group, message type, node and device (``None`` for node messages).

    Example:
        >>> parse_subject("spBv1//0.plant.DDATA.edge1.pump")
        SparkplugTopic(group='plant', message_type='DDATA', node='edge1', device='pump')
        >>> parse_subject("spBv1//0.STATE.scada") is None
        True
    """
    if not subject or not subject.startswith("spBv1//0."):
        return None
    # nats-server writes a "." inside a topic level as "//"; the IDs are shown as the device sent them.
    tokens = [token.replace("//", ".") for token in subject[len("spBv1//0.") :].split(".")]
    if len(tokens) not in (3, 4) or tokens[1] not in MESSAGE_TYPES:
        return None
    if (len(tokens) == 4) != tokens[1].startswith("D"):
        return None
    return SparkplugTopic(tokens[0], tokens[1], tokens[2], tokens[3] if len(tokens) == 4 else None)


@dataclass
class NodeStatus:
    """What is known about one edge node or device.

    Attributes:
        group: The Sparkplug group ID.
        node: The edge node ID.
        device: The device ID; ``None`` for the node itself.
        online: Whether its newest birth has no death yet.
        born_at: The newest birth's timestamp (ms since the epoch; 0 if none seen).
        died_at: The newest death's timestamp (ms; 0 if none seen).
        metrics: The metric names of its birth certificate, by alias.
    """

    group: str
    node: str
    device: str | None = None
    online: bool = False
    born_at: int = 0
    died_at: int = 0
    metrics: dict[int, str] = field(default_factory=dict)
    birth_seq: int | None = None
    deaths: dict[int, int] = field(default_factory=dict)


class SparkplugNodes:
    """The Sparkplug B nodes and devices seen in decoded payloads: online or not, and their aliases.

    :meth:`decode` is the decoder (``(data, subject) -> dict``); the default instance
    (:func:`sparkplug_nodes`) is registered for ``spBv1//0.>`` by :mod:`fastiot.payloads`.

    Example:
        >>> from fastiot.mqtt.sparkplug import sparkplug_b_pb2 as pb
        >>> nodes = SparkplugNodes()
        >>> birth = pb.Payload(seq=0, metrics=[pb.Payload.Metric(name="temp", alias=1, datatype=pb.Float)])
        >>> _ = nodes.decode(birth.SerializeToString(), "spBv1//0.plant.NBIRTH.edge1")
        >>> data = pb.Payload(seq=1, metrics=[pb.Payload.Metric(alias=1, datatype=pb.Float, float_value=2.5)])
        >>> nodes.decode(data.SerializeToString(), "spBv1//0.plant.NDATA.edge1")["values"]
        {'temp': 2.5}
        >>> nodes.online("spBv1//0.plant.NDATA.edge1")
        True
    """

    def __init__(self) -> None:
        """Start with no node known."""
        self._nodes: dict[tuple[str, str, str | None], NodeStatus] = {}
        # Decoders run on the kernel's loop and in the to_thread() of exports: keep the maps whole.
        self._lock = threading.Lock()

    def decode(self, data: bytes, subject: str | None = None) -> dict[str, Any]:
        """Decode a Sparkplug B payload, learning births and deaths and naming aliased metrics.

        Args:
            data: The payload bytes.
            subject: The NATS subject it arrived on; without it, aliases stay unnamed.

        Returns:
            ``{"message_type", "group", "node", "device", "timestamp", "seq", "metrics", "values"}``:
            ``metrics`` as :func:`~fastiot.mqtt.sparkplug.metrics.payload_to_dict` gives them (names
            filled in from the birth certificate), ``values`` each named metric's value.

        Raises:
            ValueError: If ``data`` is no Sparkplug B payload.
        """
        found = payload_to_dict(data)
        topic = parse_subject(subject)
        if topic is not None:
            with self._lock:
                self._learn(topic, found)
        named = {m["name"]: m["value"] for m in found["metrics"] if m["name"] is not None}
        head = {
            "message_type": topic.message_type if topic else None,
            "group": topic.group if topic else None,
            "node": topic.node if topic else None,
            "device": topic.device if topic else None,
        }
        return {**head, **found, "values": named}

    def _status(self, topic: SparkplugTopic, device: str | None) -> NodeStatus:
        key = (topic.group, topic.node, device)
        status = self._nodes.get(key)
        if status is None:
            status = self._nodes[key] = NodeStatus(topic.group, topic.node, device)
        return status

    def _learn(self, topic: SparkplugTopic, found: dict[str, Any]) -> None:
        kind = topic.message_type
        node = self._status(topic, None)
        device = self._status(topic, topic.device) if topic.device is not None else None
        timestamp = found["timestamp"] or 0
        bd_seq = next((m["value"] for m in found["metrics"] if m["name"] == _BIRTH_DEATH_SEQ), None)
        if kind == "NBIRTH":
            if timestamp >= node.born_at:
                # bdSeq counts 0..255 and starts again: a death from before the previous birth belongs
                # to an older session, never to this one (whose will is made after that birth).
                previous = node.born_at
                node.deaths = {seq: at for seq, at in node.deaths.items() if at >= previous}
                # 1 ms for a birth without a timestamp, so that it still counts as seen.
                node.born_at, node.birth_seq = max(timestamp, 1), bd_seq
                # Aliases are unique across a node and its devices; a new birth replaces them all.
                node.metrics = {m["alias"]: m["name"] for m in found["metrics"] if m["alias"] is not None}
        elif kind == "NDEATH":
            node.died_at = max(node.died_at, timestamp)
            if bd_seq is not None:
                node.deaths[bd_seq] = max(node.deaths.get(bd_seq, 0), timestamp)
        elif kind == "DBIRTH" and device is not None and timestamp >= device.born_at:
            device.born_at = max(timestamp, 1)
            device.metrics = {m["alias"]: m["name"] for m in found["metrics"] if m["alias"] is not None}
        elif kind == "DDEATH" and device is not None:
            device.died_at = max(device.died_at, timestamp)
        if node.born_at == 0:
            node.online = False
        elif node.birth_seq is not None and node.deaths:
            node.online = node.birth_seq not in node.deaths
        else:
            node.online = node.died_at < node.born_at
        if device is not None:
            device.online = node.online and device.born_at > 0 and device.died_at < device.born_at
        if kind in ("NDATA", "DDATA", "NCMD", "DCMD"):
            aliases = {**node.metrics, **(device.metrics if device is not None else {})}
            for metric in found["metrics"]:
                if metric["name"] is None and metric["alias"] is not None:
                    metric["name"] = aliases.get(metric["alias"])

    def online(self, subject: str) -> bool | None:
        """Whether the node or device a Sparkplug subject belongs to is online.

        Args:
            subject: Any Sparkplug B subject of the node or device (``spBv1//0.plant.NDATA.edge1``).

        Returns:
            ``True`` or ``False``; ``None`` if it is no Sparkplug subject or no birth or death of its
            node was decoded yet.
        """
        topic = parse_subject(subject)
        if topic is None:
            return None
        with self._lock:
            node = self._nodes.get((topic.group, topic.node, None))
            if node is None or (node.born_at == 0 and node.died_at == 0 and not node.deaths):
                return None
            if topic.device is None:
                return node.online
            device = self._nodes.get((topic.group, topic.node, topic.device))
            return node.online and device is not None and device.online

    def status(self) -> list[NodeStatus]:
        """Every node and device seen, nodes before their devices.

        Returns:
            Copies of their :class:`NodeStatus` (changing them changes nothing here).
        """
        with self._lock:
            return [
                NodeStatus(s.group, s.node, s.device, s.online, s.born_at, s.died_at, dict(s.metrics))
                for _, s in sorted(self._nodes.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or ""))
            ]

    def clear(self) -> None:
        """Forget every node (e.g. between two recordings replayed)."""
        with self._lock:
            self._nodes.clear()


def learn_certificates(subject: str, last_of: Callable[[str], object], known: Callable[[str], bool]) -> None:
    """Decode the newest birth and death certificates of the node (and device) ``subject`` belongs to.

    Views that decode lazily (a subject index decodes a subject's newest payload when somebody looks)
    call this before decoding a data message, so its aliases are named and its node's state is known
    whichever subject was looked at first. Certificates themselves need none: nothing is done for them.

    Args:
        subject: A Sparkplug B subject (anything else is ignored).
        last_of: Decodes the newest payload of a subject (a subject index's ``last``).
        known: Whether a subject carried messages (only those are decoded).
    """
    topic = parse_subject(subject)
    if topic is None or topic.message_type.endswith(("BIRTH", "DEATH")):
        return
    group, node = (t.replace(".", "//") for t in (topic.group, topic.node))
    certificates = [f"spBv1//0.{group}.{kind}.{node}" for kind in ("NBIRTH", "NDEATH")]
    if topic.device is not None:
        device = topic.device.replace(".", "//")
        certificates += [f"spBv1//0.{group}.{kind}.{node}.{device}" for kind in ("DBIRTH", "DDEATH")]
    for certificate in certificates:
        if known(certificate):
            last_of(certificate)


def offline_mark(subject: str, last_of: Callable[[str], object], known: Callable[[str], bool]) -> bool:
    """Whether a subject browser should mark ``subject`` offline: its Sparkplug node or device is dead.

    The certificates are decoded first (:func:`learn_certificates`), so a death shows without anybody
    opening its subject.

    Args:
        subject: The subject of the row.
        last_of: Decodes the newest payload of a subject (whatever it returns is not used).
        known: Whether a subject carried messages (only those are decoded).

    Returns:
        ``True`` if the node or device is known to be offline.
    """
    topic = parse_subject(subject)
    if topic is None:
        return False
    if topic.message_type.endswith(("BIRTH", "DEATH")):
        # A certificate's row: what the node's data rows would learn, learnt through a data subject.
        kind = "DDATA" if topic.device is not None else "NDATA"
        learn_certificates(subject.replace(f".{topic.message_type}.", f".{kind}.", 1), last_of, known)
    else:
        learn_certificates(subject, last_of, known)
    return _default.online(subject) is False


_default = SparkplugNodes()


def sparkplug_nodes() -> SparkplugNodes:
    """The Sparkplug B state behind the decoder registered by default.

    Returns:
        The process's :class:`SparkplugNodes`.

    Example:
        >>> [s.node for s in sparkplug_nodes().status()]  # doctest: +SKIP
        ['edge1', 'edge1']
    """
    return _default


def register_sparkplug_decoder(nodes: SparkplugNodes | None = None) -> None:
    """Decode ``spBv1//0.>`` payloads as Sparkplug B (done by default when :mod:`fastiot.payloads` loads).

    Args:
        nodes: The state that learns births and deaths; the default one if not given.

    Example:
        >>> register_sparkplug_decoder()
    """
    from fastiot.payloads.decoding import register_decoder

    # Protobuf is never msgpack: captures of ">" keep their fast msgpack path and call this for the rest.
    register_decoder(
        "sparkplug", (nodes or _default).decode, SPARKPLUG_PATTERN, with_subject=True, never_msgpack=True
    )
