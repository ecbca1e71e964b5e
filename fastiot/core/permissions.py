"""The NATS server's permission refusals, matched to the operation that caused them.

A NATS server that refuses a subscription or a publish keeps the connection open: it answers
``-ERR 'Permissions Violation for Subscription to "v1.>"'`` and goes on. nats-py hands that line to the
connection's error callback (as ``nats.errors.Error``, its text lowercased) and nothing else happens:
the subscription stays silent, a publish looks sent, and a request or JetStream call waits for its
timeout. :class:`RefusalWatch` keeps the refusals a connection receives, so that the operation that
asked can raise :class:`~fastiot.exceptions.PermissionDeniedError` at once:

- a subscription: its ``subscribe`` sends a PING after the SUB; the server answers in order, so a
  refusal arrives before the PONG (:meth:`RefusalWatch.mark` / :meth:`RefusalWatch.since`);
- a request or JetStream call: it runs against :meth:`RefusalWatch.guard`, which ends it with the
  error the moment a matching refusal arrives.

Example:
    >>> watch = RefusalWatch()
    >>> mark = watch.mark()
    >>> watch.record(parse_refusal(Exception('nats: permissions violation for subscription to ">"')))
    >>> [r.subject for r in watch.since(mark)]
    ['>']
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastiot._callbacks import CallbackList
from fastiot.exceptions import PermissionDeniedError

__all__ = [
    "DEFAULT_INBOX_PREFIX",
    "DEFAULT_JS_API_PREFIX",
    "DEFAULT_KEPT_REFUSALS",
    "Refusal",
    "RefusalMatch",
    "RefusalWatch",
    "jetstream_call",
    "parse_refusal",
    "same_subject",
]

DEFAULT_KEPT_REFUSALS = 256
"""How many of the newest refusals a :class:`RefusalWatch` keeps (older ones are only counted)."""

DEFAULT_INBOX_PREFIX = "_INBOX"
DEFAULT_JS_API_PREFIX = "$JS.API"

T = TypeVar("T")

# The JetStream API's calls, longest first: a refusal names the subject ("$js.api.stream.info.plant"),
# and the call is the part before the stream or consumer name.
_JETSTREAM_CALLS = sorted(
    (
        "INFO",
        "STREAM.CREATE",
        "STREAM.UPDATE",
        "STREAM.NAMES",
        "STREAM.LIST",
        "STREAM.INFO",
        "STREAM.DELETE",
        "STREAM.PURGE",
        "STREAM.SNAPSHOT",
        "STREAM.RESTORE",
        "STREAM.MSG.GET",
        "STREAM.MSG.DELETE",
        "STREAM.LEADER.STEPDOWN",
        "STREAM.PEER.REMOVE",
        "CONSUMER.CREATE",
        "CONSUMER.DURABLE.CREATE",
        "CONSUMER.NAMES",
        "CONSUMER.LIST",
        "CONSUMER.INFO",
        "CONSUMER.DELETE",
        "CONSUMER.PAUSE",
        "CONSUMER.MSG.NEXT",
        "CONSUMER.LEADER.STEPDOWN",
        "DIRECT.GET",
        "ACCOUNT.PURGE",
    ),
    key=len,
    reverse=True,
)

# nats-py lowercases the server's -ERR text before it reaches us ("permissions violation for
# subscription to ..."); the server writes "Permissions Violation for Subscription to ...".
_REFUSAL = re.compile(
    r'permissions violation for (?P<op>subscription|publish) to "(?P<subject>[^"]*)"'
    r'(?: using queue "(?P<queue>[^"]*)")?',
    re.IGNORECASE,
)


@dataclasses.dataclass(frozen=True)
class Refusal:
    """One refusal by the server.

    Attributes:
        operation: ``"subscribe"`` or ``"publish"``.
        subject: The subject or pattern the server named. nats-py lowercases the server's text, so
            compare it with :func:`same_subject`.
        queue: The queue group of a refused queue subscription.
    """

    operation: str
    subject: str
    queue: str | None = None


RefusalMatch = Callable[[Refusal], bool]
"""Says whether a refusal belongs to the operation a guard runs."""


def parse_refusal(err: BaseException) -> Refusal | None:
    """The refusal an error from nats-py's error callback reports, or ``None`` for any other error.

    Example:
        >>> parse_refusal(Exception('nats: permissions violation for publish to "cmd.stop"'))
        Refusal(operation='publish', subject='cmd.stop', queue=None)
    """
    match = _REFUSAL.search(str(err))
    if match is None:
        return None
    operation = "subscribe" if match["op"].lower() == "subscription" else "publish"
    return Refusal(operation, match["subject"], match["queue"])


def jetstream_call(api_rest: str) -> str:
    """The JetStream API call of a request subject's part after ``$JS.API.`` (``"STREAM.INFO"``).

    Example:
        >>> jetstream_call("stream.create.plant")
        'STREAM.CREATE'
    """
    upper = api_rest.upper()
    for call in _JETSTREAM_CALLS:
        if upper == call or upper.startswith(call + "."):
            return call
    return upper.split(".", 1)[0] or "JetStream"


def _jetstream_api_prefix(subject: str) -> str | None:
    # "$JS.API.STREAM.INFO.x" -> "$JS.API"; in a JetStream domain "$JS.hub.API.STREAM.INFO.x" -> "$JS.hub.API"
    tokens = subject.split(".")
    if len(tokens) > 2 and tokens[0] == "$JS" and tokens[1] == "API":
        return "$JS.API"
    if len(tokens) > 3 and tokens[0] == "$JS" and tokens[2] == "API":
        return ".".join(tokens[:3])
    return None


def same_subject(refused: str, subject: str) -> bool:
    """Whether a subject named in a refusal (lowercased by nats-py) is ``subject``."""
    return refused.casefold() == subject.casefold()


class _Guard:
    """One operation waiting to hear of a refusal that matches it: the task awaiting it, cancelled then."""

    __slots__ = ("match", "refusal", "task")

    def __init__(self, match: RefusalMatch, task: asyncio.Task[Any]) -> None:
        self.match: RefusalMatch = match
        self.task: asyncio.Task[Any] = task
        self.refusal: Refusal | None = None


class RefusalWatch:
    """The permission refusals one connection received: kept, counted and handed to who waits for them.

    Args:
        kept: How many refusals :attr:`recent` keeps (at least 1).
        inbox_prefix: The prefix of the connection's reply inboxes.

    Attributes:
        count: Refusals received so far.
        recent: The newest refusals (at most ``kept``), oldest first.
    """

    def __init__(
        self, kept: int = DEFAULT_KEPT_REFUSALS, *, inbox_prefix: str = DEFAULT_INBOX_PREFIX
    ) -> None:
        if kept < 1:
            raise ValueError(f"kept must be at least 1, got {kept}")
        self.count: int = 0
        self.recent: collections.deque[Refusal] = collections.deque(maxlen=kept)
        self.inbox_prefix: str = inbox_prefix
        """The prefix of the connection's reply inboxes: a refused subscription under it refuses requests."""
        self.inbox_refusal: tuple[int, Refusal] | None = None
        """The refusal of the reply-inbox subscription (numbered), while it stands."""
        self.unflushed_publish_refusals: int = 0
        """Refused publishes since the last :meth:`take_publish_refusals` (a flush)."""
        self._numbered: collections.deque[tuple[int, Refusal]] = collections.deque(maxlen=kept)
        self._unflushed: collections.deque[Refusal] = collections.deque(maxlen=kept)
        self._guards: set[_Guard] = set()
        self._listeners: CallbackList[[Refusal]] = CallbackList("refusal")

    def on_refusal(self, callback: Callable[[Refusal], None], remove: bool = False) -> None:
        """Call ``callback(refusal)`` for every refusal from now on, or stop with ``remove=True``.

        ``callback`` is a plain function; it runs in the read loop and must not block.

        Example:
            >>> connection.refusals.on_refusal(lambda r: print(r.operation, r.subject))  # doctest: +SKIP
        """
        self._listeners.register(callback, remove)

    def record(self, refusal: Refusal) -> None:
        """Keep a refusal and end every guarded operation it matches."""
        self.count += 1
        self.recent.append(refusal)
        self._numbered.append((self.count, refusal))
        reported = False
        for guard in list(self._guards):
            if guard.refusal is None and guard.match(refusal):
                guard.refusal = refusal
                guard.task.cancel()  # it awaits the operation now: the guard turns this into the error
                reported = True
        if refusal.operation == "publish":
            if not reported:  # a guarded request raised it already; the next flush need not say it again
                self.unflushed_publish_refusals += 1
                self._unflushed.append(refusal)
        elif self.is_inbox(refusal.subject):
            self.inbox_refusal = (self.count, refusal)
        self._listeners(refusal)

    def is_inbox(self, subject: str) -> bool:
        """Whether ``subject`` (as a refusal names it) is under the connection's inbox prefix."""
        return subject.casefold().startswith(self.inbox_prefix.casefold() + ".")

    def forget_inbox_refusal(self, before: int) -> None:
        """Forget the inbox refusal if it came before mark ``before`` (it was re-sent on reconnecting)."""
        if self.inbox_refusal is not None and self.inbox_refusal[0] <= before:
            self.inbox_refusal = None

    def take_publish_refusals(self) -> PermissionDeniedError | None:
        """The error for the publishes refused since the last call (the oldest named), or ``None``."""
        if not self.unflushed_publish_refusals:
            return None
        first = self._unflushed[0]
        more = self.unflushed_publish_refusals - 1
        self.unflushed_publish_refusals = 0
        self._unflushed.clear()
        return PermissionDeniedError(first.subject, "publish", more=more)

    def subscription_refused(
        self, mark: int, subject: str, queue: str | None = None
    ) -> PermissionDeniedError | None:
        """The error for a subscription to ``subject`` refused after ``mark``, or ``None``."""
        for refusal in self.since(mark):
            if (
                refusal.operation == "subscribe"
                and same_subject(refusal.subject, subject)
                and (refusal.queue or None) == (queue or None)
            ):
                return PermissionDeniedError(subject, "subscribe", queue=queue)
        return None

    def publish_refused(self, mark: int, subject: str) -> PermissionDeniedError | None:
        """The error for a publish to ``subject`` refused after ``mark``, or ``None``.

        The refusal is taken out of what the next flush reports.
        """
        for refusal in self.since(mark):
            if refusal.operation == "publish" and same_subject(refusal.subject, subject):
                if refusal in self._unflushed:
                    self._unflushed.remove(refusal)
                    self.unflushed_publish_refusals -= 1
                return PermissionDeniedError(subject, "publish")
        return None

    async def request(self, operation: Awaitable[T], subject: str) -> T:
        """Await a request to ``subject``; a refusal of its publish or of the reply inbox ends it at once.

        Every JetStream and key-value call is such a request (to ``$JS.API.…``, or ``$JS.<domain>.API.…``):
        its error names the API call as its ``operation`` (``"STREAM.CREATE"``).

        Raises:
            PermissionDeniedError: The server refused the request's subject or the reply inbox.
        """
        if self.inbox_refusal is not None:
            if inspect.iscoroutine(operation):
                operation.close()  # never started: no "was never awaited" warning
            raise PermissionDeniedError(self.inbox_refusal[1].subject, "subscribe")

        def match(refusal: Refusal) -> bool:
            if refusal.operation == "publish":
                return same_subject(refusal.subject, subject)
            return self.is_inbox(refusal.subject)

        def error(refusal: Refusal) -> PermissionDeniedError:
            if refusal.operation == "subscribe":
                return PermissionDeniedError(refusal.subject, "subscribe")
            api = _jetstream_api_prefix(subject)
            if api is None:
                return PermissionDeniedError(subject, "publish")
            return PermissionDeniedError(subject, jetstream_call(subject[len(api) + 1 :]))

        return await self.guard(operation, match, error)

    async def jetstream(self, operation: Awaitable[T], api_prefix: str = DEFAULT_JS_API_PREFIX) -> T:
        """Await a JetStream (or key-value) call; a refusal of a request under ``api_prefix`` ends it at once.

        Raises:
            PermissionDeniedError: The server refused a JetStream API request (``.operation`` names the
                call, e.g. ``"STREAM.CREATE"``) or the reply inbox.
        """
        if self.inbox_refusal is not None:
            if inspect.iscoroutine(operation):
                operation.close()
            raise PermissionDeniedError(self.inbox_refusal[1].subject, "subscribe")
        prefix = api_prefix.casefold() + "."

        def match(refusal: Refusal) -> bool:
            if refusal.operation == "publish":
                return refusal.subject.casefold().startswith(prefix)
            return self.is_inbox(refusal.subject)

        def error(refusal: Refusal) -> PermissionDeniedError:
            if refusal.operation == "subscribe":
                return PermissionDeniedError(refusal.subject, "subscribe")
            call = jetstream_call(refusal.subject[len(prefix) :])
            return PermissionDeniedError(api_prefix + "." + refusal.subject[len(prefix) :], call)

        return await self.guard(operation, match, error)

    def mark(self) -> int:
        """A mark for :meth:`since`: take it before sending what the server may refuse."""
        return self.count

    def since(self, mark: int) -> list[Refusal]:
        """The refusals received after ``mark`` (those still kept)."""
        return [refusal for number, refusal in self._numbered if number > mark]

    async def guard(
        self,
        operation: Awaitable[T],
        match: RefusalMatch,
        error: Callable[[Refusal], PermissionDeniedError],
    ) -> T:
        """Await ``operation``, unless a refusal that ``match`` accepts arrives first.

        Then the operation is cancelled and ``error(refusal)`` is raised: a refused request fails the
        moment the server says so, not when its timeout runs out.

        Example:
            >>> reply = await watch.guard(  # doctest: +SKIP
            ...     client.request("cmd.stop", b""),
            ...     lambda r: r.operation == "publish" and same_subject(r.subject, "cmd.stop"),
            ...     lambda r: PermissionDeniedError("cmd.stop", "publish"),
            ... )
        """
        # Awaited in place (a request's hot path gets no task of its own): a matching refusal cancels
        # this task while it waits, and the cancellation becomes the error. The refusal can only arrive
        # while the task is suspended in the operation (one thread), never after the guard is gone.
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always awaited inside a task
            return await operation
        guard = _Guard(match, task)
        self._guards.add(guard)
        try:
            return await operation
        except asyncio.CancelledError:
            if guard.refusal is None:
                raise  # cancelled by someone else
            uncancel = getattr(
                task, "uncancel", None
            )  # Python 3.11+: undo our own cancel() for asyncio.timeout
            if uncancel is not None:
                uncancel()
            raise error(guard.refusal) from None
        except Exception:
            if guard.refusal is not None:  # it failed because of the refusal (a timeout, a closed inbox)
                raise error(guard.refusal) from None
            raise
        finally:
            self._guards.discard(guard)
