"""A small simulated plant: machines that publish Thing values and answer status requests.

Two presses and an oven publish ``temperature``, ``pressure``, ``vibration`` and ``state`` on
``v1.thing.<machine>.<sensor>`` with realistic noise and occasional anomalies, and answer a
:class:`MachineStatusRequest` on ``v1.machine_status_request.<machine>``. A :class:`PlantStatusService`
answers ``v1.plant_status_request`` with every machine's state.

From a notebook cell::

    from fastiot import demo
    plant = await demo.start_demo(rate=5.0)      # 5 values per second per sensor
    ...
    await plant.stop()

From a shell (against FASTIOT_NATS_* or a local server it starts)::

    python -m fastiot.demo --rate 5
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import nats.errors

from fastiot import workbench
from fastiot.core.broker_connection import BrokerConnection, NatsBrokerConnection
from fastiot.core.data_models import FastIoTRequest, FastIoTResponse
from fastiot.core.logger import setup_logger
from fastiot.core.service import FastIoTService
from fastiot.core.service_annotations import loop, reply
from fastiot.env import FASTIOT_LOG_LEVEL, redact_url
from fastiot.exceptions import PublishBufferFullError
from fastiot.msg.thing import Thing
from fastiot.workbench import ConnectionLease, use_connection

__all__ = [
    "DEFAULT_MACHINES",
    "DemoPlant",
    "MachineSimulator",
    "MachineStatus",
    "MachineStatusRequest",
    "Oven",
    "PlantStatus",
    "PlantStatusRequest",
    "PlantStatusService",
    "Press",
    "ensure_demo",
    "main",
    "start_demo",
]


class MachineStatus(FastIoTResponse):
    """A machine's answer to a status request."""

    machine: str
    state: str
    uptime_s: float
    messages_published: int
    anomalies: int
    last_values: dict[str, float]


class MachineStatusRequest(FastIoTRequest):
    """Ask one machine for its status: ``MachineStatusRequest.get_reply_subject("press_1")``."""

    _reply_cls = MachineStatus


class PlantStatus(FastIoTResponse):
    """The status of every machine of the plant."""

    machines: dict[str, str]


class PlantStatusRequest(FastIoTRequest):
    """Ask the plant for all machines' states: ``PlantStatusRequest.get_reply_subject()``."""

    _reply_cls = PlantStatus


@dataclass
class _Sensor:
    name: str
    unit: str
    base: float
    noise: float
    drift: float = 0.0
    anomaly: float = 0.0
    value: float = field(default=0.0)


class MachineSimulator(FastIoTService):
    """One machine publishing noisy sensor values ``rate`` times per second per sensor.

    Args:
        machine: Its name, the second token of its subjects (``v1.thing.<machine>.<sensor>``).
        rate: Values per second per sensor (0 < rate <= 10,000).
        anomaly_probability: Chance per value of a spike of several standard deviations.
        seed: Seed of its random numbers, for repeatable data.
        kwargs: Passed on to :class:`FastIoTService`.
    """

    publishes = (Thing.get_subject("*.*"),)
    SENSORS: tuple[tuple[str, str, float, float, float], ...] = ()
    """(name, unit, base value, noise standard deviation, anomaly size) of each numeric sensor."""

    def __init__(
        self,
        machine: str,
        rate: float = 2.0,
        anomaly_probability: float = 0.01,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not machine or "." in machine or " " in machine:
            raise ValueError(f"machine must be one subject token like 'press_1', got {machine!r}")
        if not 0 < rate <= 10_000:
            raise ValueError(f"rate must be between 0 and 10000 values per second, got {rate}")
        if not 0 <= anomaly_probability <= 1:
            raise ValueError("anomaly_probability must be between 0 and 1")
        self.machine: str = machine
        self._logger = setup_logger(f"demo.{machine}")  # DemoPlant quiets the demo's loggers as one
        self.rate: float = rate
        self.anomaly_probability: float = anomaly_probability
        self._random: random.Random = random.Random(seed)
        self._sensors: list[_Sensor] = [
            _Sensor(name, unit, base, noise, anomaly=anomaly, value=base)
            for name, unit, base, noise, anomaly in self.SENSORS
        ]
        self.state: str = "running"
        self.started_at: float = time.monotonic()
        self.messages_published: int = 0
        self.values_dropped: int = 0
        self.anomalies: int = 0
        self._tick: int = 0
        self._status_subscription: Any = None

    async def _start(self) -> None:
        self.started_at = time.monotonic()
        assert self.broker_connection is not None
        self._status_subscription = await self.broker_connection.subscribe_reply_cb(
            MachineStatusRequest.get_reply_subject(self.machine), self.status
        )

    async def _stop(self) -> None:
        if self._status_subscription is not None:
            await self._status_subscription.unsubscribe()
            self._status_subscription = None

    def _next_state(self) -> str:
        # Mostly running; now and then a short idle or a fault, like a real line.
        roll = self._random.random()
        if self.state == "running":
            if roll < 0.002:
                return "fault"
            if roll < 0.01:
                return "idle"
        elif roll < 0.1:
            return "running"
        return self.state

    def _next_value(self, sensor: _Sensor) -> float:
        running = self.state == "running"
        target = sensor.base if running else sensor.base * 0.6
        # Mean-reverting random walk plus a slow daily-like oscillation.
        sensor.value += 0.1 * (target - sensor.value) + self._random.gauss(0.0, sensor.noise)
        value = sensor.value + sensor.noise * 2 * math.sin(self._tick / 50.0)
        if self._random.random() < self.anomaly_probability:
            self.anomalies += 1
            value += sensor.anomaly * self._random.choice((-1, 1))
        return round(value, 3)

    @loop
    async def publish_values(self) -> Any:
        """Publish the machine's state (on change, else every 20 ticks) and each sensor's next value."""
        assert self.broker_connection is not None
        self._tick += 1
        new_state = self._next_state()
        if new_state != self.state or self._tick == 1 or self._tick % 20 == 0:
            self.state = new_state
            await self._publish("state", self.state, "")
        for sensor in self._sensors:
            await self._publish(sensor.name, self._next_value(sensor), sensor.unit)
        return asyncio.sleep(1.0 / self.rate)

    async def _publish(self, sensor: str, value: Any, unit: str) -> None:
        assert self.broker_connection is not None
        thing = Thing(machine=self.machine, name=sensor, value=value, unit=unit)
        try:
            await self.broker_connection.publish(Thing.get_subject(f"{self.machine}.{sensor}"), thing)
        except PublishBufferFullError:
            # A long broker outage filled the reconnect buffer (the connection logged it once). A sensor
            # keeps measuring and drops what it cannot send, as a real one would; it must not crash.
            self.values_dropped += 1
            return
        self.messages_published += 1

    async def status(self, request: MachineStatusRequest) -> MachineStatus:
        """Answer a status request."""
        return MachineStatus(
            machine=self.machine,
            state=self.state,
            uptime_s=round(time.monotonic() - self.started_at, 3),
            messages_published=self.messages_published,
            anomalies=self.anomalies,
            last_values={s.name: round(s.value, 3) for s in self._sensors},
        )


class Press(MachineSimulator):
    """A hydraulic press: oil temperature, pressure and vibration."""

    SENSORS = (
        ("temperature", "degC", 55.0, 0.4, 25.0),
        ("pressure", "bar", 180.0, 2.0, 60.0),
        ("vibration", "mm/s", 2.5, 0.15, 6.0),
    )


class Oven(MachineSimulator):
    """A curing oven: chamber temperature, pressure and fan vibration."""

    SENSORS = (
        ("temperature", "degC", 220.0, 1.0, 40.0),
        ("pressure", "bar", 1.05, 0.005, 0.3),
        ("vibration", "mm/s", 1.2, 0.08, 4.0),
    )


DEFAULT_MACHINES: tuple[tuple[str, type[MachineSimulator]], ...] = (
    ("press_1", Press),
    ("press_2", Press),
    ("oven_1", Oven),
)


class PlantStatusService(FastIoTService):
    """Answers ``v1.plant_status_request`` with the state of each machine of a :class:`DemoPlant`.

    Args:
        machines: The machines whose state it reports.
        kwargs: Passed on to :class:`FastIoTService`.
    """

    def __init__(self, machines: list[MachineSimulator], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._logger = setup_logger("demo.plant_status")
        self.machines: list[MachineSimulator] = machines

    @reply(subject=PlantStatusRequest.get_reply_subject())
    async def plant_status(self, request: PlantStatusRequest) -> PlantStatus:
        """The state of each machine of the plant."""
        return PlantStatus(machines={m.machine: m.state for m in self.machines})


_DEMO_LOGGER = setup_logger("demo")
"""The parent of every demo service's logger (``fastiot.demo.<machine>``)."""


class DemoPlant:
    """The machines of the demo plant plus its status service, started and stopped together.

    Args:
        connection: The connection its services use (default: the workbench's shared one while it runs,
            see :func:`fastiot.workbench.use_connection`).
        rate: Values per second per sensor.
        machines: (name, simulator class) of each machine.
        anomaly_probability: Chance per value of a spike.
        seed: Seed of the machines' random numbers, for repeatable data.
        quiet: Log only warnings and errors of its services. The plant is scenery in a notebook: its
            "started Press" lines would show as red stderr lines in whichever cell starts or stops it.

    Example:
        >>> plant = DemoPlant(connection=broker, rate=5.0)  # doctest: +SKIP
        >>> await plant.start()                             # doctest: +SKIP
    """

    def __init__(
        self,
        connection: BrokerConnection | None = None,
        *,
        rate: float = 2.0,
        machines: tuple[tuple[str, type[MachineSimulator]], ...] = DEFAULT_MACHINES,
        anomaly_probability: float = 0.01,
        seed: int | None = None,
        quiet: bool = True,
    ) -> None:
        self.connection: BrokerConnection | None = connection
        self.quiet: bool = quiet
        self.rate: float = rate
        self._machine_specs = machines
        self.anomaly_probability: float = anomaly_probability
        self.seed: int | None = seed
        self.machines: list[MachineSimulator] = []
        self.services: list[FastIoTService] = []
        self._lease: ConnectionLease[Any] | None = None

    @property
    def is_running(self) -> bool:
        """Whether the plant's services are started."""
        return bool(self.services)

    async def start(self) -> DemoPlant:
        """Start every machine and the status service on the running loop."""
        if self.is_running:
            return self
        self._lease = await use_connection(self.connection)
        self.connection = self._lease.connection
        self.machines = [
            cls(
                machine=name,
                rate=self.rate,
                anomaly_probability=self.anomaly_probability,
                seed=None if self.seed is None else self.seed + i,
                broker_connection=self.connection,
            )
            for i, (name, cls) in enumerate(self._machine_specs)
        ]
        self.services = [*self.machines, PlantStatusService(self.machines, broker_connection=self.connection)]
        # One level for the demo's loggers (fastiot.demo.*); NOTSET leaves it to FASTIOT_LOG_LEVEL.
        _DEMO_LOGGER.setLevel(logging.WARNING if self.quiet else logging.NOTSET)
        try:
            for service in self.services:
                await service.__aenter__()  # the services run on the loop until stop() exits them
        except BaseException:
            await self.stop()
            raise
        workbench.register(self)
        return self

    async def stop(self) -> None:
        """Stop every machine and the status service."""
        services, self.services = self.services, []
        for service in services:
            await service.__aexit__(None, None, None)
        workbench.unregister(self)
        lease, self._lease = self._lease, None
        if lease is not None:
            if lease.is_shared:
                self.connection = None  # the next start() asks the workbench again
            await lease.release()

    async def __aenter__(self) -> DemoPlant:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


async def start_demo(
    connection: BrokerConnection | None = None, *, rate: float = 2.0, seed: int | None = None
) -> DemoPlant:
    """Start the demo plant (see :class:`DemoPlant`) and return it; ``await plant.stop()`` ends it."""
    return await DemoPlant(connection, rate=rate, seed=seed).start()


async def ensure_demo(
    connection: BrokerConnection | None = None, *, rate: float = 2.0, timeout: float = 1.0
) -> DemoPlant | None:
    """Start the demo plant unless one already answers on this broker (e.g. ``fastiot-workbench``'s).

    Notebooks call this so they run the same inside the workbench and on their own.

    Returns:
        The plant it started (stop it with ``await plant.stop()``), or None if one was running.
    """
    try:
        async with use_connection(connection) as broker:
            await broker.request(
                PlantStatusRequest.get_reply_subject(), PlantStatusRequest(), timeout=timeout
            )
        return None
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return await start_demo(connection, rate=rate)


MQTT_PORT_ENV = "FASTIOT_MQTT_PORT"
"""The broker's MQTT port, which the demo's MQTT devices use when ``--mqtt`` is not given."""


async def _mqtt_devices(url: str | None) -> Any:
    """The demo's MQTT devices, started unless they run already; ``None`` without an MQTT listener.

    Asked for with ``--mqtt``, a failure to start them is an error; found through FASTIOT_MQTT_PORT,
    only a warning (the plant runs on, without them).
    """
    from fastiot.env import env_broker
    from fastiot.exceptions import BrokerError, ConfigurationError
    from fastiot.mqtt.devices import ensure_mqtt_devices

    given = url is not None
    if url is None:
        port = os.environ.get(MQTT_PORT_ENV, "").strip()
        if not port:
            return None
        url = f"mqtt://{urlsplit(workbench.broker_url().split(',')[0]).hostname or '127.0.0.1'}:{port}"
    try:
        return await ensure_mqtt_devices(url, username=env_broker.user, password=env_broker.password)
    except (BrokerError, ConfigurationError) as e:
        if given:
            raise
        _DEMO_LOGGER.warning("no MQTT devices: %s", e)
        return None


def main(argv: list[str] | None = None) -> None:
    """``python -m fastiot.demo``: run the demo plant until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description="Run the fastiot demo plant (two presses and an oven).")
    parser.add_argument("--rate", type=float, default=2.0, help="values per second per sensor (default 2)")
    parser.add_argument("--seed", type=int, default=None, help="random seed for repeatable data")
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print only warnings and errors (fastiot-workbench runs it so: it says what runs itself)",
    )
    parser.add_argument(
        "--mqtt",
        metavar="URL",
        default=None,
        help="also run MQTT devices (Tasmota and Shelly plugs, a Sparkplug B edge node) against this MQTT "
        "listener, e.g. mqtt://127.0.0.1:1883; they log in as FASTIOT_NATS_USER/FASTIOT_NATS_PASSWORD "
        f"(default: the broker's host at port {MQTT_PORT_ENV} when that is set)",
    )
    args = parser.parse_args(argv)
    if args.quiet and not os.environ.get(FASTIOT_LOG_LEVEL, "").strip():
        os.environ[FASTIOT_LOG_LEVEL] = "WARNING"  # read by every logger the services set up

    async def run() -> None:
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await workbench.ensure_broker()
        broker = await NatsBrokerConnection.connect(name="fastiot-demo")
        # In a terminal the life-cycle lines are what the user asked to see (unless --quiet).
        plant = await DemoPlant(broker, rate=args.rate, seed=args.seed, quiet=args.quiet).start()
        devices = await _mqtt_devices(args.mqtt)
        if not args.quiet:
            url = redact_url(workbench.broker_url())
            print(f"demo plant publishing on {url} (v1.thing.>); Ctrl-C stops it", flush=True)
            if devices is not None:
                print(f"MQTT devices {', '.join(devices.names)} on {devices.url}", flush=True)
        try:
            await stop.wait()
        finally:
            if devices is not None:
                await devices.stop()
            await plant.stop()
            await broker.close()
            await workbench.shutdown()

    asyncio.run(run())


if __name__ == "__main__":
    main()
