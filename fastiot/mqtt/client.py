"""Where the broker's MQTT listener is, and a short-lived paho-mqtt client for what only MQTT can do.

A NATS publish reaches MQTT subscribers at QoS 0 without a retained flag. A publish at QoS 1, a retained
message, or the clearing of one must go through the MQTT listener itself: :func:`publish_blocking` does
that with a real MQTT client (paho-mqtt) that logs in with the broker's credentials.

Example:
    >>> endpoint = mqtt_endpoint()  # doctest: +SKIP
    >>> endpoint.url  # doctest: +SKIP
    'mqtt://127.0.0.1:1883'
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from fastiot.env import FASTIOT_MQTT_PORT, env_broker, mqtt_port
from fastiot.exceptions import MqttAuthenticationError, MqttUnavailableError

__all__ = ["DEFAULT_MQTT_TIMEOUT", "MqttEndpoint", "mqtt_endpoint", "publish_blocking"]

DEFAULT_MQTT_TIMEOUT = 10.0
"""Seconds an MQTT connect or publish may take."""
_KEEPALIVE = 30
# MQTT 3.1.1's CONNACK codes for a refused login ("bad user name or password", "not authorized").
_LOGIN_REFUSED = {4, 5, 134, 135}


@dataclass(frozen=True)
class MqttEndpoint:
    """The broker's MQTT listener and the login MQTT clients use there (the NATS broker's)."""

    host: str
    port: int
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``mqtt://HOST:PORT``, without the login (for MQTT Explorer's connection form)."""
        return f"mqtt://{self.host}:{self.port}"


def mqtt_endpoint(host: str | None = None, port: int | None = None) -> MqttEndpoint:
    """The MQTT listener of the broker the workbench uses, with the broker's login.

    The port comes from ``FASTIOT_MQTT_PORT`` (set for the kernels by ``fastiot-workbench --mqtt`` and
    by the on-demand broker), the host and login from the ``FASTIOT_NATS_*`` settings.

    Args:
        host: Instead of the NATS server's host.
        port: Instead of ``FASTIOT_MQTT_PORT``.

    Raises:
        MqttUnavailableError: No port is known.

    Example:
        >>> mqtt_endpoint(port=1883).port  # doctest: +SKIP
        1883
    """
    port = port or mqtt_port()
    if not port:
        raise MqttUnavailableError(
            f"no MQTT listener is known: start the workbench with `fastiot-workbench --mqtt`, or set "
            f"{FASTIOT_MQTT_PORT}=1883 before the first cell (the on-demand broker then gets one), or give "
            f"the port of your broker's `mqtt {{ listen: ... }}` in {FASTIOT_MQTT_PORT}"
        )
    first = urlsplit(env_broker.servers[0])
    user, password = env_broker.user, env_broker.password
    if env_broker.token is not None:
        user, password = user or "token", env_broker.token  # nats-server reads the MQTT password as the token
    if first.username and user is None:
        user = unquote(first.username)
        password = unquote(first.password) if first.password is not None else None
    return MqttEndpoint(host or first.hostname or "localhost", port, user, password)


def publish_blocking(
    endpoint: MqttEndpoint,
    messages: list[tuple[str, bytes, int, bool]],
    *,
    timeout: float = DEFAULT_MQTT_TIMEOUT,
) -> None:
    """Connect to ``endpoint``, publish ``(topic, payload, qos, retain)`` messages in order, disconnect.

    Blocks (run it in a thread from async code); at QoS 1 it returns once the server acknowledged.

    Raises:
        MqttAuthenticationError: The listener refused the login.
        MqttUnavailableError: Nothing answered at the endpoint within ``timeout``.
    """
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"fastiot-{uuid.uuid4().hex[:12]}")
    if endpoint.user is not None or endpoint.password is not None:
        client.username_pw_set(endpoint.user or "", endpoint.password)
    connected = threading.Event()
    refused: list[int] = []

    def on_connect(
        _client: object, _userdata: object, _flags: object, reason: object, _props: object
    ) -> None:
        value = int(getattr(reason, "value", 0))
        if value:
            refused.append(value)
        connected.set()

    client.on_connect = on_connect
    client.connect_timeout = timeout
    try:
        client.connect(endpoint.host, endpoint.port, keepalive=_KEEPALIVE)
    except OSError as e:
        raise MqttUnavailableError(
            f"no MQTT listener answers at {endpoint.url} ({e}); start the workbench with --mqtt, or fix "
            f"{FASTIOT_MQTT_PORT}"
        ) from None
    client.loop_start()
    try:
        if not connected.wait(timeout):
            raise MqttUnavailableError(
                f"the MQTT listener at {endpoint.url} did not accept a login in {timeout:g} s"
            )
        if refused:
            if refused[0] in _LOGIN_REFUSED:
                raise MqttAuthenticationError(
                    f"the MQTT listener at {endpoint.url} refused the login of user {endpoint.user!r}: MQTT "
                    f"clients log in with the NATS broker's user and password (FASTIOT_NATS_USER/PASSWORD)"
                )
            raise MqttUnavailableError(
                f"the MQTT listener at {endpoint.url} refused the connection (code {refused[0]})"
            )
        for topic, payload, qos, retain in messages:
            info = client.publish(topic, payload, qos=qos, retain=retain)
            info.wait_for_publish(timeout)
            if not info.is_published():
                raise MqttUnavailableError(
                    f"the MQTT listener at {endpoint.url} did not take {topic!r} in {timeout:g} s"
                )
    finally:
        client.disconnect()
        client.loop_stop()
