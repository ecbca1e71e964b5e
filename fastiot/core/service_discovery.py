"""A running service answers NATS' services API (``$SRV.PING``, ``$SRV.INFO``, ``$SRV.STATS``).

Every :class:`~fastiot.core.service.FastIoTService` registers itself while it runs, so ``nats micro
list``, NATS NUI and :func:`fastiot.services.discover` see it. The answers are nats-py's own
``nats.micro`` documents: ``name`` is the class name, ``id`` the service id, ``description`` the first
line of the class docstring; the endpoints are the ``@reply`` handlers with their request and response
JSON schemas in metadata; the service metadata lists the ``@subscribe`` subjects, the ``@loop`` methods and
the host. STATS are the service's own counters.

nats.micro's ``Service`` is not used to run this: it would subscribe each endpoint a second time (a
request would be answered twice) and keep counters of its own. Its documents and subject names are.

Example:
    >>> import nats.micro.service as micro
    >>> micro.control_subject(micro.ServiceVerb.INFO, name="Doubler")
    '$SRV.INFO.Doubler'
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from logging import Logger
from typing import Any

import nats.micro.service as micro
import pydantic
from nats.aio.msg import Msg as NatsMsg
from nats.nuid import NUID

from fastiot.core.broker_api import BrokerConnection
from fastiot.core.data_models import ReplySubject
from fastiot.core.logger import setup_logger
from fastiot.core.subscription import Subscription
from fastiot.exceptions import PermissionDeniedError

__all__ = [
    "DEFAULT_SERVICE_VERSION",
    "HandlerTiming",
    "ServiceRegistration",
    "json_schema_of",
    "service_description",
]

DEFAULT_SERVICE_VERSION = "0.0.0"
"""The version a service reports when its class sets none (``version = "1.2.0"``)."""

_logger = setup_logger("fastiot.discovery")
_NOT_A_NAME_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_nuid = NUID()


def _token(text: str) -> str:
    # Names and ids are subject tokens in $SRV.INFO.<name>.<id>: nats.micro allows these characters only.
    return _NOT_A_NAME_CHAR.sub("_", text) or "_"


def service_description(cls: type) -> str:
    """The first line of a class's own docstring ("" without one; an inherited docstring does not count).

    Example:
        >>> class Doubler:
        ...     '''Doubles numbers.
        ...
        ...     More text.'''
        >>> service_description(Doubler)
        'Doubles numbers.'
    """
    doc = cls.__dict__.get("__doc__") or ""
    return next((line.strip() for line in doc.strip().splitlines() if line.strip()), "")


def json_schema_of(model: Any) -> dict[str, Any]:
    """The JSON schema of a message model (a pydantic model class or ``dict``); ``{}`` if it has none.

    Example:
        >>> json_schema_of(dict)
        {'type': 'object'}
    """
    try:
        schema: dict[str, Any] = pydantic.TypeAdapter(model).json_schema()
    except (pydantic.PydanticUserError, TypeError, ValueError):  # a type pydantic cannot describe
        return {}
    return schema


class HandlerTiming:
    """Time spent in each handler of a service, for STATS' processing times.

    Attributes:
        nanoseconds: Total time per handler name, in nanoseconds.
    """

    def __init__(self) -> None:
        """Start with no time spent."""
        self.nanoseconds: dict[str, int] = {}

    def add(self, name: str, started_ns: int) -> None:
        """Add the time since ``started_ns`` (``time.perf_counter_ns()``) to handler ``name``."""
        self.nanoseconds[name] = self.nanoseconds.get(name, 0) + time.perf_counter_ns() - started_ns


class ServiceRegistration:
    """Answers the services API for one running service (made and owned by the service).

    Nothing is sent before :meth:`start`.

    Args:
        cls: The service's class (name, ``version``, docstring).
        service_id: Its id; "" for a fresh unique one.
        subscribes: The subjects of its ``@subscribe`` handlers.
        replies: Its ``@reply`` handlers' subjects by handler name: the endpoints.
        loops: The names of its ``@loop`` methods.
        subscriptions: Returns the running subscriptions by handler name (their counters).
        timing: Where the handlers' processing times are added up.
        logger: Where to say that the service is not discoverable (the service's own logger).

    Attributes:
        id: The id in the answers: the service's ``service_id``, or a fresh unique one if it has none.
        name: The class name.
        version: The class's ``version`` (semantic version), else :data:`DEFAULT_SERVICE_VERSION`.
        error: Why the service is not discoverable (the server refused a subscription), else None.
        started: When it registered (UTC).
    """

    def __init__(
        self,
        cls: type,
        *,
        service_id: str,
        subscribes: list[str],
        replies: dict[str, ReplySubject],
        loops: list[str],
        subscriptions: Callable[[], Mapping[str, Subscription]],
        timing: HandlerTiming,
        logger: Logger | None = None,
    ) -> None:
        self._cls: type = cls
        self._subscribes: list[str] = sorted(set(subscribes))
        self._replies: dict[str, ReplySubject] = dict(sorted(replies.items()))
        self._loops: list[str] = sorted(loops)
        self._subscriptions: Callable[[], Mapping[str, Subscription]] = subscriptions
        self._timing: HandlerTiming = timing
        self._logger: Logger = logger or _logger
        self._connection: BrokerConnection | None = None
        self._info: dict[str, Any] | None = None
        self.id: str = _token(service_id) if service_id else _nuid.next().decode()
        self.name: str = _token(cls.__name__)
        version = str(getattr(cls, "version", DEFAULT_SERVICE_VERSION))
        if not micro.SEMVER_REGEX.match(version):
            _logger.warning(
                "%s.version %r is not a semantic version such as 1.2.0; the services API reports %s",
                cls.__name__,
                version,
                DEFAULT_SERVICE_VERSION,
            )
            version = DEFAULT_SERVICE_VERSION
        self.version: str = version
        self.description: str = service_description(cls)
        self.error: PermissionDeniedError | None = None
        self.started: datetime = datetime.now(timezone.utc)
        self._subs: list[Subscription] = []
        self._answers: dict[str, Callable[[], dict[str, Any]]] = {
            micro.ServiceVerb.PING.value: self.ping,
            micro.ServiceVerb.INFO.value: self.info,
            micro.ServiceVerb.STATS.value: self.stats,
        }

    @property
    def subjects(self) -> list[str]:
        """The subjects this registration listens on: every verb, for all, per name and per id."""
        # A wildcard for the verb: three subscriptions instead of nine.
        return ["$SRV.*", f"$SRV.*.{self.name}", f"$SRV.*.{self.name}.{self.id}"]

    async def start(self, connection: BrokerConnection) -> bool:
        """Answer the services API on ``connection`` until :meth:`stop`.

        A refusal by the server does not raise: :attr:`error` keeps it and a warning is logged, since the
        service runs fine without being discoverable.

        Returns:
            Whether the service is now discoverable.
        """
        self.started = datetime.now(timezone.utc)
        try:
            for subject in self.subjects:
                self._subs.append(await connection.subscribe_raw(subject, self._on_request))
        except NotImplementedError:  # a connection without raw subscriptions (BrokerConnectionDummy)
            await self.stop()
            return False
        except PermissionDeniedError as e:
            await self.stop()
            self.error = e
            self._logger.warning(
                "%s runs, but is not discoverable (nats micro list, discover()): %s. To be seen, the user "
                "needs permission to subscribe to $SRV.>",
                self._cls.__name__,
                e,
            )
            return False
        self._connection = connection
        return True

    async def stop(self) -> None:
        """Stop answering (at once: a stopping service is no longer listed)."""
        subs, self._subs = self._subs, []
        for sub in subs:
            try:
                await sub.unsubscribe()
            except Exception as e:  # gone with the connection
                _logger.debug("unsubscribing from the services API: %r", e)

    @property
    def is_registered(self) -> bool:
        """Whether the service answers the services API now."""
        return bool(self._subs)

    async def _on_request(self, msg: NatsMsg) -> None:
        answer = self._answers.get(msg.subject.split(".")[1])
        if answer is None or not msg.reply or self._connection is None:
            return  # another verb, or no one to answer
        await self._connection.publish_raw(msg.reply, json.dumps(answer()).encode())

    def _identity(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "version": self.version, "metadata": self.metadata()}

    def metadata(self) -> dict[str, str]:
        """The service's metadata: host, process, ``@subscribe`` subjects and ``@loop`` methods.

        Lists are JSON arrays in a string, since the services API allows string values only.
        """
        subscribes = self._subscribes
        loops = self._loops
        return {
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "module": self._cls.__module__,
            "framework": "fastiot",
            "subscribes": json.dumps(subscribes),
            "loops": json.dumps(loops),
        }

    def ping(self) -> dict[str, Any]:
        """The answer to ``$SRV.PING``."""
        return micro.ServicePing(**self._identity()).to_dict()

    def info(self) -> dict[str, Any]:
        """The answer to ``$SRV.INFO``: the ``@reply`` handlers are the endpoints."""
        if self._info is None:  # what it says does not change while the service runs
            self._info = self._make_info()
        return self._info

    def _make_info(self) -> dict[str, Any]:
        endpoints = []
        for name, subject in self._replies.items():
            endpoints.append(
                micro.EndpointInfo(
                    name=_token(name),
                    subject=subject.name,
                    queue_group="",  # a @reply subscription has none: every instance answers
                    metadata={
                        "request_type": getattr(subject.msg_cls, "__name__", str(subject.msg_cls)),
                        "response_type": getattr(subject.reply_cls, "__name__", str(subject.reply_cls)),
                        "request_schema": json.dumps(json_schema_of(subject.msg_cls)),
                        "response_schema": json.dumps(json_schema_of(subject.reply_cls)),
                        "content_type": "application/msgpack",
                    },
                )
            )
        info = micro.ServiceInfo(description=self.description, endpoints=endpoints, **self._identity())
        return info.to_dict()

    def stats(self) -> dict[str, Any]:
        """The answer to ``$SRV.STATS``, from the service's own counters.

        Beside the endpoints (``@reply`` handlers), ``handlers`` has the counters of every handler,
        ``@subscribe`` ones included (an addition the services API lets readers ignore).
        """
        subscriptions = self._subscriptions()
        endpoints = []
        for name, subject in self._replies.items():
            sub = subscriptions.get(name)
            requests = sub.received if sub is not None else 0
            spent = self._timing.nanoseconds.get(name, 0)
            endpoints.append(
                micro.EndpointStats(
                    name=_token(name),
                    subject=subject.name,
                    queue_group="",
                    num_requests=requests,
                    num_errors=sub.errors if sub is not None else 0,
                    last_error=sub.last_error if sub is not None else "",
                    processing_time=spent,
                    average_processing_time=spent // requests if requests else 0,
                )
            )
        identity = self._identity()
        stats = micro.ServiceStats(
            started=self.started.replace(tzinfo=None), endpoints=endpoints, **identity
        ).to_dict()
        stats["handlers"] = {
            name: {
                "received": sub.received,
                "errors": sub.errors,
                "last_error": sub.last_error,
                "processing_time": self._timing.nanoseconds.get(name, 0),
            }
            for name, sub in subscriptions.items()
        }
        return stats
