"""Demo MQTT devices: Tasmota- and Shelly-like plugs and a Sparkplug B edge node, over real MQTT.

Each device is a paho-mqtt client of the broker's MQTT listener with the topic layout of the firmware
it imitates, so what the workbench shows is what a shop floor's devices send:

- :class:`TasmotaPlug`: ``tele/<dev>/SENSOR`` (JSON energy readings), ``tele/<dev>/STATE``, a retained
  last will ``tele/<dev>/LWT`` (``Online``/``Offline``); obeys ``cmnd/<dev>/POWER`` (``ON``, ``OFF``,
  ``TOGGLE``, empty asks) and answers on ``stat/<dev>/POWER`` and ``stat/<dev>/RESULT``.
- :class:`ShellyPlug`: ``shellies/<dev>/relay/0`` (``on``/``off``, retained),
  ``shellies/<dev>/relay/0/power``, ``.../energy``, ``shellies/<dev>/temperature``, a retained will
  ``shellies/<dev>/online`` (``true``/``false``); obeys ``shellies/<dev>/relay/0/command`` and, like
  the Tasmota plug, ``cmnd/<dev>/POWER`` (answering on ``stat/<dev>/POWER``).
- :class:`SparkplugEdgeNode`: ``spBv1.0/<group>/NBIRTH/<node>`` and ``DBIRTH`` with aliases, then
  ``NDATA``/``DDATA`` carrying aliases only, and ``NDEATH`` as its MQTT last will.

:class:`MqttDemoDevices` starts them together (``python -m fastiot.demo --mqtt URL``).

Example:
    >>> devices = MqttDemoDevices("mqtt://127.0.0.1:1883", interval=1.0)  # doctest: +SKIP
    >>> await devices.start()                                             # doctest: +SKIP
    >>> await devices.stop()                                              # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from fastiot.exceptions import BrokerAuthenticationError, BrokerUnavailableError, MqttUrlError

__all__ = [
    "DEFAULT_INTERVAL",
    "DEMO_PLUG",
    "MqttDemoDevices",
    "MqttDevice",
    "ShellyPlug",
    "SparkplugEdgeNode",
    "TasmotaPlug",
    "ensure_mqtt_devices",
]

DEFAULT_INTERVAL = 2.0
"""Seconds between two telemetry messages of a demo device."""
DEMO_PLUG = "tasmota_plug1"
"""The demo plug whose retained LWT tells whether the demo's devices run."""
_CONNECT_TIMEOUT = 10.0


def _switch(state: bool, command: str) -> bool | None:
    """The new relay state for a ``POWER`` command; ``None`` for an unknown command."""
    command = command.strip().upper()
    if command in ("ON", "1", "TRUE"):
        return True
    if command in ("OFF", "0", "FALSE"):
        return False
    if command in ("TOGGLE", "2"):
        return not state
    if command == "":
        return state  # an empty command asks for the state
    return None


class MqttDevice:
    """One demo device: a paho-mqtt client with a last will, telemetry on :meth:`tick`, commands.

    Args:
        name: The device's name in its topics (``tasmota_plug1``).
        host: The MQTT listener's host.
        port: Its port.
        username: The MQTT login (the broker's NATS user), if the broker needs one.
        password: Its password.
        seed: Seed of the device's readings, for repeatable data.
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        seed: int | None = None,
    ) -> None:
        """Prepare the client; :meth:`connect` connects it."""
        self.name: str = name
        self.host: str = host
        self.port: int = port
        self.power: bool = True
        self.random: random.Random = random.Random(seed)
        self.client: mqtt.Client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"demo-{name}")
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._connected = threading.Event()
        self._refused: str | None = None

    # -- what a device type defines -----------------------------------------------------------------

    def will(self) -> tuple[str, bytes, bool]:
        """The last will: (topic, payload, retain)."""
        raise NotImplementedError

    def online(self) -> list[tuple[str, bytes, bool]]:
        """What the device publishes once connected: (topic, payload, retain) each."""
        return []

    def command_topics(self) -> list[str]:
        """The topics the device obeys."""
        return []

    def command(self, topic: str, payload: bytes) -> list[tuple[str, bytes, bool]]:
        """Obey a command; returns what to publish in answer."""
        return []

    def tick(self) -> list[tuple[str, bytes, bool]]:
        """One round of telemetry."""
        return []

    # -- the client ---------------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            self._connected.set()
            return
        for topic in self.command_topics():
            client.subscribe(topic, qos=1)
        self.publish(self.online())
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.publish(self.command(message.topic, bytes(message.payload)))

    def publish(self, messages: list[tuple[str, bytes, bool]]) -> None:
        """Publish (topic, payload, retain) messages with QoS 1."""
        for topic, payload, retain in messages:
            self.client.publish(topic, payload, qos=1, retain=retain)

    def connect(self, timeout: float = _CONNECT_TIMEOUT) -> None:
        """Connect (blocking, at most ``timeout`` s) and start paho's network thread.

        Raises:
            BrokerUnavailableError: Nothing answers on the MQTT port.
            BrokerAuthenticationError: The broker refused the login.
        """
        topic, payload, retain = self.will()
        self.client.will_set(topic, payload, qos=1, retain=retain)
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except OSError as e:
            raise BrokerUnavailableError(
                f"no MQTT listener at {self.host}:{self.port} ({e}); start the broker with --mqtt"
            ) from e
        self.client.loop_start()
        if not self._connected.wait(timeout) or self._refused is not None:
            self.client.loop_stop()
            if self._refused is not None:
                raise BrokerAuthenticationError(
                    f"the MQTT listener at {self.host}:{self.port} refused {self.name} ({self._refused}); "
                    "give the broker's user and password (FASTIOT_NATS_USER/FASTIOT_NATS_PASSWORD)"
                )
            raise BrokerUnavailableError(f"the MQTT listener at {self.host}:{self.port} did not answer")

    def disconnect(self, *, clean: bool = True) -> None:
        """Go offline: ``clean`` says goodbye first (a Tasmota publishes ``Offline`` itself).

        Without ``clean`` the connection is just dropped, and the broker publishes the last will.
        """
        if not self._connected.is_set() or self._refused is not None:
            self.client.loop_stop()  # dropped before: nobody to say goodbye to
            return
        self._connected.clear()
        if clean:
            topic, payload, retain = self.will()
            self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(_CONNECT_TIMEOUT)
            self.client.disconnect()
            self.client.loop_stop()
        else:
            # What a power cut does: no DISCONNECT packet, so the broker sends the will. The network
            # thread stops first, or paho would reconnect at once.
            self.client.loop_stop()
            sock = self.client.socket()
            if sock is not None:
                sock.close()


class TasmotaPlug(MqttDevice):
    """A Tasmota smart plug with energy monitoring (topics ``tele/``, ``stat/``, ``cmnd/``).

    Example:
        >>> plug = TasmotaPlug("tasmota_plug1", "127.0.0.1", 1883)  # doctest: +SKIP
        >>> plug.connect()                                          # doctest: +SKIP
    """

    def will(self) -> tuple[str, bytes, bool]:
        """``tele/<dev>/LWT`` ``Offline``, retained."""
        return f"tele/{self.name}/LWT", b"Offline", True

    def online(self) -> list[tuple[str, bytes, bool]]:
        """``Online`` on the LWT topic, and the relay's state."""
        return [(f"tele/{self.name}/LWT", b"Online", True), *self._power()]

    def command_topics(self) -> list[str]:
        """``cmnd/<dev>/POWER``."""
        return [f"cmnd/{self.name}/POWER"]

    def _power(self) -> list[tuple[str, bytes, bool]]:
        state = b"ON" if self.power else b"OFF"
        return [
            (f"stat/{self.name}/RESULT", json.dumps({"POWER": state.decode()}).encode(), False),
            (f"stat/{self.name}/POWER", state, False),
        ]

    def command(self, topic: str, payload: bytes) -> list[tuple[str, bytes, bool]]:
        """Switch the relay; answer with its state, or ``{"Command": "Unknown"}``."""
        new = _switch(self.power, payload.decode("utf-8", "replace"))
        if new is None:
            return [(f"stat/{self.name}/RESULT", b'{"Command":"Unknown"}', False)]
        self.power = new
        return self._power()

    def tick(self) -> list[tuple[str, bytes, bool]]:
        """``tele/<dev>/STATE`` and ``tele/<dev>/SENSOR`` with the energy readings."""
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        watts = round(self.random.uniform(40, 60), 1) if self.power else 0.0
        sensor = {
            "Time": now,
            "ENERGY": {
                "Total": round(self.random.uniform(10, 11), 3),
                "Power": watts,
                "Voltage": round(self.random.gauss(230, 1.5)),
                "Current": round(watts / 230, 3),
                "Factor": 0.95 if self.power else 0.0,
            },
        }
        state = {
            "Time": now,
            "POWER": "ON" if self.power else "OFF",
            "Wifi": {"RSSI": self.random.randint(60, 90)},
        }
        return [
            (f"tele/{self.name}/STATE", json.dumps(state).encode(), False),
            (f"tele/{self.name}/SENSOR", json.dumps(sensor).encode(), False),
        ]


class ShellyPlug(MqttDevice):
    """A Shelly Plug S (Gen1 topics ``shellies/<dev>/...``).

    Example:
        >>> plug = ShellyPlug("shellyplug-s-1", "127.0.0.1", 1883)  # doctest: +SKIP
        >>> plug.connect()                                           # doctest: +SKIP
    """

    def will(self) -> tuple[str, bytes, bool]:
        """``shellies/<dev>/online`` ``false``, retained."""
        return f"shellies/{self.name}/online", b"false", True

    def online(self) -> list[tuple[str, bytes, bool]]:
        """``true`` on the online topic, and the relay's state."""
        return [(f"shellies/{self.name}/online", b"true", True), *self._relay()]

    def command_topics(self) -> list[str]:
        """Shelly's own ``shellies/<dev>/relay/0/command`` and Tasmota's ``cmnd/<dev>/POWER``."""
        return [f"shellies/{self.name}/relay/0/command", f"cmnd/{self.name}/POWER"]

    def _relay(self) -> list[tuple[str, bytes, bool]]:
        return [
            (f"shellies/{self.name}/relay/0", b"on" if self.power else b"off", True),
            (f"stat/{self.name}/POWER", b"ON" if self.power else b"OFF", False),
        ]

    def command(self, topic: str, payload: bytes) -> list[tuple[str, bytes, bool]]:
        """Switch the relay (``on``/``off``/``toggle``, any case); answer with its state."""
        new = _switch(self.power, payload.decode("utf-8", "replace"))
        if new is None:
            return []
        self.power = new
        return self._relay()

    def tick(self) -> list[tuple[str, bytes, bool]]:
        """Power (W), energy (Wmin) and the device's temperature."""
        watts = round(self.random.uniform(100, 120), 2) if self.power else 0.0
        base = f"shellies/{self.name}"
        return [
            (f"{base}/relay/0/power", str(watts).encode(), False),
            (f"{base}/relay/0/energy", str(self.random.randint(5000, 6000)).encode(), False),
            (f"{base}/temperature", str(round(self.random.gauss(35, 0.5), 1)).encode(), False),
        ]


class SparkplugEdgeNode(MqttDevice):
    """A Sparkplug B edge node with one device: births with aliases, data by alias, death as last will.

    Args:
        name: The edge node ID.
        host: The MQTT listener's host.
        port: Its port.
        group: The Sparkplug group ID.
        device: The ID of its one device.
        **kwargs: ``username``, ``password``, ``seed`` as for :class:`MqttDevice`.

    Example:
        >>> node = SparkplugEdgeNode("edge1", "127.0.0.1", 1883, group="plant")  # doctest: +SKIP
        >>> node.connect()                                                       # doctest: +SKIP
    """

    NODE_METRICS = (("bdSeq", 1, "Int64"), ("Node Control/Rebirth", 2, "Boolean"), ("uptime_s", 3, "Int64"))
    DEVICE_METRICS = (("Temperature", 10, "Float"), ("Pressure", 11, "Double"), ("Running", 12, "Boolean"))

    def __init__(
        self, name: str, host: str, port: int, *, group: str = "plant", device: str = "pump1", **kwargs: Any
    ) -> None:
        """Prepare the node; :meth:`connect` sends its births."""
        super().__init__(name, host, port, **kwargs)
        self.group: str = group
        self.device: str = device
        self.bd_seq: int = 0
        self.seq: int = 0
        self.started: float = time.monotonic()

    def _topic(self, kind: str, device: str | None = None) -> str:
        return f"spBv1.0/{self.group}/{kind}/{self.name}" + (f"/{device}" if device else "")

    def _payload(self, metrics: Sequence[tuple[str | None, int, str, Any]], *, seq: bool = True) -> bytes:
        from fastiot.mqtt.sparkplug import sparkplug_b_pb2 as pb

        payload = pb.Payload(timestamp=int(time.time() * 1000))
        if seq:
            payload.seq = self.seq
            self.seq = (self.seq + 1) % 256
        for name, alias, datatype, value in metrics:
            metric = payload.metrics.add()
            if name is not None:
                metric.name = name
            metric.alias = alias
            metric.datatype = pb.DataType.Value(datatype)
            metric.timestamp = payload.timestamp
            if datatype == "Boolean":
                metric.boolean_value = bool(value)
            elif datatype == "Float":
                metric.float_value = float(value)
            elif datatype == "Double":
                metric.double_value = float(value)
            else:
                metric.long_value = int(value)
        return payload.SerializeToString()

    def will(self) -> tuple[str, bytes, bool]:
        """NDEATH with the session's ``bdSeq`` (not retained, as the spec says)."""
        return self._topic("NDEATH"), self._payload([("bdSeq", 1, "Int64", self.bd_seq)], seq=False), False

    def _readings(self) -> dict[str, Any]:
        return {
            "Temperature": round(self.random.gauss(60, 2), 2),
            "Pressure": round(self.random.gauss(4.2, 0.1), 3),
            "Running": self.power,
        }

    def online(self) -> list[tuple[str, bytes, bool]]:
        """NBIRTH (``seq`` 0) and DBIRTH: every metric with its name and alias."""
        self.seq = 0
        uptime = int(time.monotonic() - self.started)
        node = [("bdSeq", 1, "Int64", self.bd_seq), ("Node Control/Rebirth", 2, "Boolean", False)]
        node.append(("uptime_s", 3, "Int64", uptime))
        readings = self._readings()
        device = [(name, alias, kind, readings[name]) for name, alias, kind in self.DEVICE_METRICS]
        return [
            (self._topic("NBIRTH"), self._payload(node), False),
            (self._topic("DBIRTH", self.device), self._payload(device), False),
        ]

    def command_topics(self) -> list[str]:
        """NCMD (rebirth) and DCMD (``Running``), and Tasmota's ``cmnd/<node>/POWER``."""
        return [self._topic("NCMD"), self._topic("DCMD", self.device), f"cmnd/{self.name}/POWER"]

    def command(self, topic: str, payload: bytes) -> list[tuple[str, bytes, bool]]:
        """Rebirth on ``Node Control/Rebirth``; start or stop the device on ``Running`` or POWER."""
        if topic.startswith("cmnd/"):
            new = _switch(self.power, payload.decode("utf-8", "replace"))
            if new is not None:
                self.power = new
            return [(f"stat/{self.name}/POWER", b"ON" if self.power else b"OFF", False), *self.tick()]
        from fastiot.mqtt.sparkplug import payload_to_dict

        try:
            metrics = payload_to_dict(payload)["metrics"]
        except ValueError:
            return []
        for metric in metrics:
            if metric["name"] == "Node Control/Rebirth" or metric["alias"] == 2:
                return self.online()
            if metric["name"] == "Running" or metric["alias"] == 12:
                self.power = bool(metric["value"])
                return self.tick()
        return []

    def tick(self) -> list[tuple[str, bytes, bool]]:
        """NDATA (uptime) and DDATA (the readings), by alias only."""
        readings = self._readings()
        device = [(None, alias, kind, readings[name]) for name, alias, kind in self.DEVICE_METRICS]
        uptime = int(time.monotonic() - self.started)
        return [
            (self._topic("NDATA"), self._payload([(None, 3, "Int64", uptime)]), False),
            (self._topic("DDATA", self.device), self._payload(device), False),
        ]


class MqttDemoDevices:
    """The demo's MQTT devices, connected and publishing together on the running loop.

    Two Tasmota plugs, a Shelly plug and a Sparkplug B edge node (group ``plant``, node ``edge1``,
    device ``pump1``).

    Args:
        url: The MQTT listener: ``mqtt://[user:password@]host:port``.
        username: The login, if not in the URL (the broker's NATS user).
        password: Its password.
        interval: Seconds between two telemetry rounds.
        seed: Seed of the readings, for repeatable data.

    Example:
        >>> devices = await MqttDemoDevices("mqtt://127.0.0.1:1883").start()  # doctest: +SKIP
        >>> devices.names                                                      # doctest: +SKIP
        ['tasmota_plug1', 'tasmota_plug2', 'shellyplug-s-1', 'edge1']
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        interval: float = DEFAULT_INTERVAL,
        seed: int | None = None,
    ) -> None:
        """Prepare the devices; :meth:`start` connects them."""
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.hostname is None or parts.port is None:
            raise MqttUrlError(
                f"give the MQTT listener as mqtt://HOST:PORT, e.g. mqtt://127.0.0.1:1883, got {url!r}"
            )
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        username = username if username is not None else (unquote(parts.username) if parts.username else None)
        password = password if password is not None else (unquote(parts.password) if parts.password else None)
        login: dict[str, Any] = {"username": username, "password": password}
        seeds = [None if seed is None else seed + i for i in range(4)]
        host, port = parts.hostname, parts.port
        self.interval: float = interval
        self.url: str = f"mqtt://{host}:{port}"
        """The MQTT listener, without the login."""
        self.devices: list[MqttDevice] = [
            TasmotaPlug(DEMO_PLUG, host, port, seed=seeds[0], **login),
            TasmotaPlug("tasmota_plug2", host, port, seed=seeds[1], **login),
            ShellyPlug("shellyplug-s-1", host, port, seed=seeds[2], **login),
            SparkplugEdgeNode("edge1", host, port, seed=seeds[3], **login),
        ]
        self._task: asyncio.Task[None] | None = None

    @property
    def names(self) -> list[str]:
        """The devices' names (their topics' second level)."""
        return [d.name for d in self.devices]

    @property
    def is_running(self) -> bool:
        """Whether the devices are connected and publishing."""
        return self._task is not None

    async def start(self) -> MqttDemoDevices:
        """Connect every device and publish telemetry every ``interval`` s until :meth:`stop`.

        Returns:
            The devices, running.

        Raises:
            BrokerUnavailableError: No MQTT listener answers.
            BrokerAuthenticationError: It refused the login.
        """
        if self._task is not None:
            return self
        started: list[MqttDevice] = []
        try:
            for device in self.devices:
                await asyncio.to_thread(device.connect)
                started.append(device)
        except BaseException:
            for device in started:
                await asyncio.to_thread(device.disconnect)
            raise
        self._task = asyncio.get_running_loop().create_task(self._run(), name="fastiot mqtt demo devices")
        return self

    async def _run(self) -> None:
        while True:
            for device in self.devices:
                device.publish(device.tick())
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Stop publishing and disconnect every device (each says ``Offline`` first)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        for device in self.devices:
            await asyncio.to_thread(device.disconnect)

    async def __aenter__(self) -> MqttDemoDevices:
        """Start the devices."""
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        """Stop the devices."""
        await self.stop()


def _retained_online(url: str, username: str | None, password: str | None, timeout: float) -> bool:
    """Whether the first demo plug's retained ``tele/<dev>/LWT`` says ``Online`` (blocking)."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    found: list[bytes] = []
    done = threading.Event()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"demo-probe-{random.getrandbits(32):08x}"
    )
    if username is not None:
        client.username_pw_set(username, password)

    def on_message(_client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        found.append(bytes(message.payload))
        done.set()

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(f"tele/{DEMO_PLUG}/LWT", qos=1)
    try:
        client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    except OSError:
        return False
    client.loop_start()
    try:
        # A retained message comes with the subscription; none within the timeout means none is kept.
        done.wait(timeout)
    finally:
        client.loop_stop()
        client.disconnect()
    return found[:1] == [b"Online"]


async def ensure_mqtt_devices(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    interval: float = DEFAULT_INTERVAL,
    timeout: float = 1.0,
) -> MqttDemoDevices | None:
    """Start the demo's MQTT devices unless they run already (their plug's retained LWT is ``Online``).

    Two sets of the same devices would take each other's MQTT sessions over, again and again; notebooks
    call this so they run the same inside the workbench (whose demo runs the devices) and on their own.

    Args:
        url: The MQTT listener, ``mqtt://HOST:PORT``.
        username: The login (the broker's NATS user).
        password: Its password.
        interval: Seconds between two telemetry rounds of devices started here.
        timeout: How long to wait for the retained status.

    Returns:
        The devices it started (stop them with ``await devices.stop()``), or ``None`` if they ran.

    Raises:
        MqttUrlError: ``url`` is no ``mqtt://HOST:PORT``.
        BrokerUnavailableError: No MQTT listener answers.
        BrokerAuthenticationError: It refused the login.

    Example:
        >>> devices = await ensure_mqtt_devices("mqtt://127.0.0.1:1883")  # doctest: +SKIP
    """
    devices = MqttDemoDevices(url, username=username, password=password, interval=interval)
    if await asyncio.to_thread(_retained_online, url, username, password, timeout):
        return None
    return await devices.start()
