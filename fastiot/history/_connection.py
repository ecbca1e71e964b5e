"""JetStream errors made readable.

Which connection a history call uses when it is given none is the workbench's rule
(:func:`fastiot.workbench.use_connection`).
"""

from __future__ import annotations

from typing import Any

import nats.errors
import nats.js.errors

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.env import env_broker, redact_url
from fastiot.exceptions import HistoryServerError, JetStreamUnavailableError

__all__ = ["jetstream_error", "server_url"]

# JetStream's error codes that mean "JetStream is there, but not ready" (a cluster without a leader yet).
_NOT_READY_CODES = {10008, 10009}
_HINTS = {
    10005: "; the cluster has fewer servers with JetStream up than the replicas asked for (or they are "
    "still joining): ask for fewer replicas or wait until the servers are up",
    10074: "; a single server keeps one copy: use replicas=1, or a cluster of at least that many servers",
}
JETSTREAM_HINT = (
    "start nats-server with JetStream: `nats-server -js`, or add `jetstream {}` (with a store_dir) to "
    "its configuration; the broker fastiot-workbench starts has it on"
)


def server_url(connection: NatsBrokerConnection) -> str:
    """The URL of the server the connection is attached to, without credentials."""
    url = connection.connected_url
    return redact_url(url) if url else "the NATS server"


def jetstream_error(error: BaseException, connection: NatsBrokerConnection, doing: str) -> Exception:
    """The fastiot error for a nats-py JetStream error raised while ``doing`` something."""
    where = server_url(connection)
    if isinstance(error, nats.js.errors.ServiceUnavailableError) and error.err_code is None:
        # No responders on $JS.API: the server runs without JetStream (or not in that domain).
        domain = env_broker.js_domain
        if domain is not None:
            return JetStreamUnavailableError(
                f"{doing} failed: no JetStream of domain {domain!r} answers at {where}; check "
                f"FASTIOT_NATS_JS_DOMAIN (the `jetstream {{ domain: ... }}` of the hub or leaf to use)"
            )
        return JetStreamUnavailableError(f"{doing} failed: {where} has no JetStream; {JETSTREAM_HINT}")
    if isinstance(error, nats.js.errors.APIError) and error.err_code in _NOT_READY_CODES:
        return JetStreamUnavailableError(
            f"{doing} failed: JetStream at {where} is not ready ({error.description}); in a new cluster the "
            f"servers are still electing a leader: try again in a few seconds"
        )
    if isinstance(error, (nats.errors.TimeoutError, TimeoutError)):
        return JetStreamUnavailableError(
            f"{doing} failed: JetStream at {where} did not answer in time; check that the server runs with "
            f"JetStream and, in a cluster, that most of its servers are up"
        )
    if isinstance(error, nats.js.errors.APIError):
        hint = _HINTS.get(error.err_code or 0, "")
        return HistoryServerError(
            f"{doing} failed: {where} says: {error.description} (JetStream error {error.err_code}){hint}",
            err_code=error.err_code,
            description=error.description,
        )
    return HistoryServerError(f"{doing} failed: {type(error).__name__}: {error}")


def describe(value: Any) -> str:
    """A short text of a config value for error messages."""
    return "unlimited" if value in (None, -1, 0) else repr(value)
