"""A real MQTT device for the tests: a paho-mqtt client whose messages and events are waited for, bounded."""

from __future__ import annotations

import queue
import threading
import uuid
from typing import Any

import paho.mqtt.client as paho

from tests.waits import WAIT

__all__ = ["Device", "Received"]

Received = tuple[str, bytes, int, bool, bool]
"""topic, payload, qos, retain, dup"""


class Device:
    """A paho-mqtt client on its own network thread; ``messages`` holds what it received.

    Example:
        >>> with Device(server, "plug_1") as device:  # doctest: +SKIP
        ...     device.subscribe("cmnd/plug_1/#")
        ...     device.next_message()
    """

    def __init__(
        self,
        port: int,
        client_id: str | None = None,
        *,
        user: str | None = None,
        password: str | None = None,
        clean_session: bool = True,
        manual_ack: bool = False,
        will: tuple[str, bytes, int, bool] | None = None,
    ) -> None:
        self.port = port
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuid.uuid4().hex[:10]}",
            clean_session=clean_session,
            manual_ack=manual_ack,
        )
        if user is not None:
            self.client.username_pw_set(user, password)
        if will is not None:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos=qos, retain=retain)
        self.messages: queue.Queue[Received] = queue.Queue()
        self.raw: list[Any] = []
        self.connack: queue.Queue[int] = queue.Queue()
        self._subscribed: queue.Queue[int] = queue.Queue()
        self.session_present: bool | None = None
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._lock = threading.Lock()

    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        self.session_present = bool(getattr(flags, "session_present", False))
        self.connack.put(int(reason.value))

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self._lock:
            self.raw.append(msg)
        self.messages.put((msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), bool(msg.dup)))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        self._subscribed.put(mid)

    def connect(self, timeout: float = WAIT) -> int:
        """Connect and wait for the server's CONNACK; returns its code (0: accepted)."""
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        return self.connack.get(timeout=timeout)

    def subscribe(self, topic_filter: str, qos: int = 0, timeout: float = WAIT) -> None:
        """Subscribe and wait for the SUBACK."""
        self.client.subscribe(topic_filter, qos)
        self._subscribed.get(timeout=timeout)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Publish and wait until sent (QoS 0) or acknowledged (QoS 1)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(WAIT)
        assert info.is_published(), f"{topic} was not published within {WAIT} s"

    def next_message(self, timeout: float = WAIT) -> Received:
        """The next message received, waiting at most ``timeout`` s."""
        return self.messages.get(timeout=timeout)

    def drop(self) -> None:
        """End the connection abruptly, as a device that loses power: no DISCONNECT is sent."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def disconnect(self) -> None:
        """A clean MQTT DISCONNECT."""
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Device:
        assert self.connect() == 0, "the MQTT listener refused the connection"
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.disconnect()
