"""A production-like, locked-down nats-server for the permission tests: one account, several users.

- ``admin``: everything.
- ``viewer``: subscribes to ``v1.thing.>`` and its reply inboxes; publishes only what reading JetStream
  needs (stream and consumer info, creating and pulling ephemeral consumers, direct gets, acks).
- ``press1``: may read one machine only (``v1.thing.press_1.>``) and publish nothing.
- ``nojs``: may do anything but JetStream.
- ``noinbox``: may publish anything but subscribe only to ``v1.>``, so no request gets a reply.
"""

from __future__ import annotations

from typing import Any

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.nats_server import NatsServer

PASSWORDS = {name: f"{name}-secret" for name in ("admin", "viewer", "press1", "nojs", "noinbox")}

# What reading a recording needs, and nothing that changes one.
VIEWER_JETSTREAM = [
    "$JS.API.INFO",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.INFO.>",
    "$JS.API.STREAM.MSG.GET.>",
    "$JS.API.DIRECT.GET.>",
    "$JS.API.CONSUMER.CREATE.>",
    "$JS.API.CONSUMER.INFO.>",
    "$JS.API.CONSUMER.DELETE.>",
    "$JS.API.CONSUMER.MSG.NEXT.>",
    "$JS.ACK.>",
    "$JS.FC.>",
]


def _user(name: str, permissions: dict[str, Any] | None) -> dict[str, Any]:
    user: dict[str, Any] = {"user": name, "password": PASSWORDS[name]}
    if permissions is not None:
        user["permissions"] = permissions
    return user


def authorization() -> dict[str, Any]:
    """The ``authorization`` block: a fresh copy, so a test may change it and :meth:`NatsServer.reload`."""
    return {
        "users": [
            _user("admin", None),
            _user(
                "viewer",
                {"subscribe": {"allow": ["v1.thing.>", "_INBOX.>"]}, "publish": {"allow": VIEWER_JETSTREAM}},
            ),
            _user(
                "press1",
                {"subscribe": {"allow": ["v1.thing.press_1.>", "_INBOX.>"]}, "publish": {"deny": [">"]}},
            ),
            _user("nojs", {"publish": {"allow": [">"], "deny": ["$JS.>"]}}),
            _user("noinbox", {"subscribe": {"allow": ["v1.>"]}, "publish": {"allow": [">"]}}),
        ]
    }


def locked_down_server() -> NatsServer:
    """A NatsServer (JetStream on, not started) with the users above."""
    return NatsServer(jetstream=True, authorization=authorization())


def url_for(server: NatsServer, user: str) -> str:
    """The server's URL with ``user``'s credentials in it."""
    return f"nats://{user}:{PASSWORDS[user]}@{server.host}:{server.port}"


async def connect_as(server: NatsServer, user: str) -> NatsBrokerConnection:
    """A connection to ``server`` as ``user``."""
    return await NatsBrokerConnection.connect(servers=url_for(server, user))
