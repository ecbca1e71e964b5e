"""Find the services on the broker through NATS' services API, as ``nats micro list/info/stats`` does.

Every FastIoT service answers it while it runs (see :mod:`fastiot.core.service_discovery`), and so does
any other NATS micro service (nats-py's ``nats.micro``, Go's ``micro``...).

Example:
    >>> from fastiot.services import discover, which_services
    >>> services = await discover(timeout=0.5)  # doctest: +SKIP
    >>> [(s.name, s.requests, s.errors) for s in services]  # doctest: +SKIP
    [('Doubler', 3, 1)]
    >>> [s.name for s in which_services("v1.thing.press_1.temp", services)]  # doctest: +SKIP
    ['Printer']
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from nats.aio.msg import Msg as NatsMsg
from nats.micro.service import ServiceVerb, control_subject

from fastiot import workbench
from fastiot.core.broker_connection import BrokerConnection
from fastiot.core.subject_helper import check_subject, subject_matches
from fastiot.env import env_broker
from fastiot.exceptions import InvalidSubjectError

__all__ = [
    "DEFAULT_DISCOVER_TIMEOUT",
    "DiscoveredService",
    "Endpoint",
    "discover",
    "service_from_answers",
    "stats",
    "which_services",
]

DEFAULT_DISCOVER_TIMEOUT = 1.0
"""Seconds :func:`discover` gathers answers: every service on the broker answers within it."""

# Answers kept per discovery at most, so a flood of answers cannot grow without bound.
_MAX_ANSWERS = 10_000


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of a service (a FastIoT ``@reply``) with its schemas and counters.

    Attributes:
        name: The endpoint's name (the handler's name for a FastIoT service).
        subject: The subject it answers on.
        metadata: Its metadata as sent (strings).
        request_schema: The JSON schema of a request, if the service sent one.
        response_schema: The JSON schema of a response, if the service sent one.
        requests: Requests it received (from STATS; 0 without).
        errors: Requests that failed.
        last_error: The newest error, "" without.
        processing_time: Total seconds spent handling requests.
    """

    name: str
    subject: str
    metadata: dict[str, str] = field(default_factory=dict)
    request_schema: dict[str, Any] | None = None
    response_schema: dict[str, Any] | None = None
    requests: int = 0
    errors: int = 0
    last_error: str = ""
    processing_time: float = 0.0

    @property
    def average_time(self) -> float:
        """Average seconds per request (0 without requests)."""
        return self.processing_time / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class DiscoveredService:
    """One running service instance as its INFO and STATS answers describe it.

    Attributes:
        name: The service's name (a FastIoT service's class name).
        id: The instance's id.
        version: Its version.
        description: Its description.
        metadata: Its metadata (strings; a FastIoT service's ``host``, ``subscribes``, ``loops``...).
        endpoints: Its endpoints with their counters.
        started: When it started (UTC), if its STATS said.
        info: The INFO answer as received.
        stats: The STATS answer as received (None if it sent none in time).
    """

    name: str
    id: str
    version: str = ""
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    endpoints: tuple[Endpoint, ...] = ()
    started: datetime | None = None
    info: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] | None = None

    @property
    def host(self) -> str:
        """The host it runs on ("" if it did not say)."""
        return self.metadata.get("host", "")

    @property
    def subscribes(self) -> list[str]:
        """The subjects of its ``@subscribe`` handlers (a FastIoT service's metadata; [] for others)."""
        return _json_list(self.metadata.get("subscribes"))

    @property
    def loops(self) -> list[str]:
        """The names of its ``@loop`` methods (a FastIoT service's metadata; [] for others)."""
        return _json_list(self.metadata.get("loops"))

    @property
    def uptime(self) -> timedelta | None:
        """How long it has run, if its STATS said when it started."""
        return None if self.started is None else datetime.now(timezone.utc) - self.started

    @property
    def requests(self) -> int:
        """Requests of all its endpoints."""
        return sum(e.requests for e in self.endpoints)

    @property
    def errors(self) -> int:
        """Failed requests of all its endpoints."""
        return sum(e.errors for e in self.endpoints)

    @property
    def average_time(self) -> float:
        """Average seconds per request over all its endpoints (0 without requests)."""
        requests = self.requests
        return sum(e.processing_time for e in self.endpoints) / requests if requests else 0.0

    def use_of(self, subject: str) -> str:
        """How it uses ``subject``: "replies" (an endpoint), "subscribes", or "" (wildcards match as in NATS).

        Example:
            >>> DiscoveredService("S", "1", metadata={"subscribes": '["v1.thing.>"]'}).use_of("v1.thing.a")
            'subscribes'
        """
        if any(subject_matches(subject, e.subject) for e in self.endpoints):
            return "replies"
        if any(subject_matches(subject, pattern) for pattern in self.subscribes):
            return "subscribes"
        return ""


def _json_list(text: str | None) -> list[str]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _schema(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _started(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    # Go sends nanoseconds ("...T10:00:00.123456789Z"); fromisoformat takes at most microseconds.
    head, dot, rest = text.rstrip("Z").partition(".")
    digits = "".join(c for c in rest if c.isdigit())[:6]
    try:
        started = datetime.fromisoformat(f"{head}.{digits or '0'}" if dot else head)
    except ValueError:
        return None
    return started.replace(tzinfo=timezone.utc) if started.tzinfo is None else started


def service_from_answers(info: dict[str, Any], stats: dict[str, Any] | None) -> DiscoveredService:
    """A :class:`DiscoveredService` from a service's INFO answer and, if any, its STATS answer.

    Example:
        >>> service_from_answers({"name": "S", "id": "1", "endpoints": []}, None).requests
        0
    """
    counters = {e.get("name"): e for e in (stats or {}).get("endpoints") or [] if isinstance(e, dict)}
    endpoints = []
    for raw in info.get("endpoints") or []:
        if not isinstance(raw, dict):
            continue
        metadata = {str(k): str(v) for k, v in (raw.get("metadata") or {}).items()}
        counted = counters.get(raw.get("name"), {})
        endpoints.append(
            Endpoint(
                name=str(raw.get("name", "")),
                subject=str(raw.get("subject", "")),
                metadata=metadata,
                request_schema=_schema(metadata.get("request_schema")),
                response_schema=_schema(metadata.get("response_schema")),
                requests=int(counted.get("num_requests") or 0),
                errors=int(counted.get("num_errors") or 0),
                last_error=str(counted.get("last_error") or ""),
                processing_time=int(counted.get("processing_time") or 0) / 1e9,
            )
        )
    return DiscoveredService(
        name=str(info.get("name", "")),
        id=str(info.get("id", "")),
        version=str(info.get("version", "")),
        description=str(info.get("description") or ""),
        metadata={str(k): str(v) for k, v in (info.get("metadata") or {}).items()},
        endpoints=tuple(endpoints),
        started=_started((stats or {}).get("started")),
        info=info,
        stats=stats,
    )


async def _gather(connection: BrokerConnection, subject: str, timeout: float) -> list[dict[str, Any]]:
    """Send one request on ``subject`` and keep every JSON answer that comes within ``timeout`` s."""
    answers: list[dict[str, Any]] = []

    async def on_answer(msg: NatsMsg) -> None:
        try:
            answer = json.loads(msg.data)
        except ValueError:
            return  # not a services API answer
        if isinstance(answer, dict) and len(answers) < _MAX_ANSWERS:
            answers.append(answer)

    prefix = env_broker.inbox_prefix or "_INBOX"  # a locked-down account may only receive on its own
    inbox = f"{prefix}.{secrets.token_hex(11)}"
    sub = await connection.subscribe_raw(inbox, on_answer)
    try:
        await connection.publish_raw(subject, b"", reply=inbox)
        await asyncio.sleep(timeout)  # a scatter-gather: no answer says it is the last one
    finally:
        await sub.unsubscribe()
    return answers


async def _discover(
    connection: BrokerConnection, name: str | None, timeout: float
) -> list[DiscoveredService]:
    infos, all_stats = await asyncio.gather(
        _gather(connection, control_subject(ServiceVerb.INFO, name=name), timeout),
        _gather(connection, control_subject(ServiceVerb.STATS, name=name), timeout),
    )
    stats_by_id = {(s.get("name"), s.get("id")): s for s in all_stats}
    services = [service_from_answers(i, stats_by_id.get((i.get("name"), i.get("id")))) for i in infos]
    return sorted(services, key=lambda s: (s.name, s.id))


def _check_timeout(timeout: float) -> None:
    if not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")


async def discover(
    *, timeout: float = DEFAULT_DISCOVER_TIMEOUT, connection: BrokerConnection | None = None
) -> list[DiscoveredService]:
    """Every service on the broker, with its INFO and STATS (FastIoT's and any other NATS micro service).

    Args:
        timeout: Seconds to gather answers (every service answering within it is listed).
        connection: The connection to ask on; default the workbench's (see ``use_connection``).

    Returns:
        The services, sorted by name and id.

    Raises:
        ValueError: ``timeout`` is not > 0.
        PermissionDeniedError: The user may not subscribe to its inbox (or publish to ``$SRV.*``).

    Example:
        >>> for service in await discover(timeout=0.5):  # doctest: +SKIP
        ...     print(service.name, service.host, service.requests)
    """
    _check_timeout(timeout)
    async with workbench.use_connection(connection) as broker:
        return await _discover(broker, None, timeout)


async def stats(
    name: str, *, timeout: float = DEFAULT_DISCOVER_TIMEOUT, connection: BrokerConnection | None = None
) -> list[DiscoveredService]:
    """The running instances of the service called ``name``, each with its current STATS.

    Args:
        name: The service's name (a FastIoT service's class name).
        timeout: Seconds to gather answers.
        connection: The connection to ask on; default the workbench's.

    Returns:
        One entry per running instance ([] if none answered): ``requests``, ``errors``, ``average_time``,
        and per endpoint in ``endpoints``.

    Raises:
        ValueError: ``timeout`` is not > 0.
        InvalidSubjectError: ``name`` cannot be a service name (a dot, a space or a wildcard in it).

    Example:
        >>> [s.requests for s in await stats("Doubler")]  # doctest: +SKIP
        [3]
    """
    _check_timeout(timeout)
    check_subject(name, wildcards=False)
    if "." in name:
        raise InvalidSubjectError(f"{name!r} is no service name: a name has no dots (e.g. 'Doubler')")
    async with workbench.use_connection(connection) as broker:
        return await _discover(broker, name, timeout)


def _kernel_services() -> list[DiscoveredService]:
    """The services this kernel runs or has discovered lately (its runners and service directories)."""
    known: list[DiscoveredService] = []
    for owned in workbench.registered():
        registration = getattr(owned, "registration", None)
        if registration is not None and getattr(registration, "is_registered", False):
            known.append(service_from_answers(registration.info(), registration.stats()))
        seen = getattr(owned, "services", None)
        if isinstance(seen, list):
            known.extend(s for s in seen if isinstance(s, DiscoveredService))
    unique = {(s.name, s.id): s for s in known}
    return sorted(unique.values(), key=lambda s: (s.name, s.id))


def which_services(
    subject: str, services: Iterable[DiscoveredService] | None = None
) -> list[DiscoveredService]:
    """The known services that subscribe to or answer on ``subject``.

    Args:
        subject: A subject (``v1.thing.press_1.temp``).
        services: The services to look in, e.g. what :func:`discover` returned; default those this
            kernel knows: the ones it runs and those a running ``ServiceDirectory`` (the ServiceBrowser's
            model) has discovered.

    Returns:
        The services whose ``@subscribe`` patterns or endpoints match ``subject``.

    Raises:
        InvalidSubjectError: ``subject`` is not a NATS subject.

    Example:
        >>> [s.name for s in which_services("v1.thing.press_1.temp", await discover())]  # doctest: +SKIP
        ['Printer']
    """
    check_subject(subject, wildcards=None)
    pool = _kernel_services() if services is None else list(services)
    return [s for s in pool if s.use_of(subject)]
