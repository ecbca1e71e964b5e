"""The FastIoT core: broker connection, data models, serialization and services.

Example:
    >>> from fastiot.core import FastIoTService, FastIoTPublish, subscribe, reply, loop
    >>> from fastiot.core import NatsBrokerConnection, ConnectionState
"""

from __future__ import annotations

from fastiot.core.broker_connection import (
    BrokerConnection,
    ConnectionState,
    NatsBrokerConnection,
    Subscription,
)
from fastiot.core.data_models import FastIoTPublish, FastIoTRequest, FastIoTResponse, ReplySubject, Subject
from fastiot.core.service import FastIoTService
from fastiot.core.service_annotations import loop, reply, subscribe

__all__ = [
    "BrokerConnection",
    "ConnectionState",
    "FastIoTPublish",
    "FastIoTRequest",
    "FastIoTResponse",
    "FastIoTService",
    "NatsBrokerConnection",
    "ReplySubject",
    "Subject",
    "Subscription",
    "loop",
    "reply",
    "subscribe",
]
