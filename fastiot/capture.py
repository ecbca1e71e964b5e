"""MessageCapture: messages on NATS subjects -> a bounded columnar ring buffer -> pandas DataFrames.

A capture subscribes to one or more subjects on the broker and keeps the newest ``max_rows``
messages, decoded and split into columns as they arrive, so a notebook can look at the traffic as a
DataFrame at any time while the capture keeps running.

Example:
    >>> from fastiot.capture import MessageCapture
    >>> async def main(connection):
    ...     async with MessageCapture("v1.thing.>", connection) as capture:
    ...         await capture.wait_for(100, timeout=30)
    ...         return capture.to_dataframe()
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import math
import operator
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import msgpack
import nats.errors
import numpy as np
import pydantic

from fastiot.core.broker_connection import (
    DEFAULT_PENDING_BYTES_LIMIT,
    DEFAULT_PENDING_MSGS_LIMIT,
    NatsBrokerConnection,
)
from fastiot.core.data_models import Subject
from fastiot.core.logger import setup_logger
from fastiot.exceptions import NotRunningError, ParquetUnavailableError, WaitTimeoutError

if TYPE_CHECKING:
    import pandas as pd
    from nats.aio.msg import Msg as NatsMsg

    from fastiot.core.subscription import RawSubscription as NatsSubscription

__all__ = [
    "DEFAULT_MAX_COLUMNS",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_RATE_WINDOW",
    "DEFAULT_WAIT_TIMEOUT",
    "ERROR_COLUMN",
    "RAW_COLUMN",
    "VALUE_COLUMN",
    "CaptureSubjects",
    "MessageCallback",
    "MessageCapture",
    "NotRunningError",
    "ParquetUnavailableError",
    "WaitTimeoutError",
    "decode_payload",
    "flatten_payload",
    "string_array",
]

DEFAULT_MAX_ROWS = 100_000
DEFAULT_WAIT_TIMEOUT = 10.0
# ``rate`` counts the messages of the last this many seconds.
DEFAULT_RATE_WINDOW = 5.0
# A payload with more distinct (flattened) fields than this is not a table; the rest is counted, not kept.
DEFAULT_MAX_COLUMNS = 1_000

VALUE_COLUMN = "value"
"""The column of a payload that decodes to something other than a mapping (a number, a list, ...)."""
ERROR_COLUMN = "error"
"""The column that says why a row's payload did not decode (``None`` for rows that did)."""
RAW_COLUMN = "raw"
"""The column with the undecoded bytes of rows whose payload did not decode."""

# Column order of Thing messages: what a person reads first comes first.
_THING_COLUMN_ORDER = ("machine", "name", "value", "unit", "timestamp", "measurement_id")
_META_COLUMNS = ("received_at", "subject")

_NEVER = sys.maxsize
_INITIAL_CAPACITY = 1_024
# Rows are written to the columns in batches of this many (or when somebody reads).
_BATCH_ROWS = 512
# Fewer rows of one shape than this in a mixed batch are written one by one.
_MIN_GROUP_ROWS = 4
# Low-cardinality strings (machine names, units) are stored once; a column whose distinct values
# exceed this is not worth deduplicating and its cache is reset.
_MAX_INTERNED_STRINGS = 16_384
_MAX_SUBJECT_NAMES = 100_000
_MAX_ERROR_TEXT = 500
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_EXACT_INT = 2**53

_logger = setup_logger("capture")
_unpackb = msgpack.unpackb
_time_ns = time.time_ns

# Called with the number of rows that arrived since the last call; 0 means the capture was cleared.
MessageCallback = Callable[[int], None]
# What a capture listens to: a NATS pattern, a Subject, or a list of them.
CaptureSubjects = Union[str, Subject, Sequence[Union[str, Subject]]]  # noqa: UP007 - a runtime alias


class _DecodeFailure:
    """Stands for a payload that did not decode, with its bytes and why."""

    __slots__ = ("data", "text")

    def __init__(self, text: str, data: bytes) -> None:
        self.text = text
        self.data = data


def _error_text(error: BaseException) -> str:
    if isinstance(error, pydantic.ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in error.errors()]
        detail = f"{error.error_count()} validation error(s): " + "; ".join(parts)
    else:
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return detail if len(detail) <= _MAX_ERROR_TEXT else detail[: _MAX_ERROR_TEXT - 3] + "..."


def _decode_msgpack_or_json(data: bytes) -> Any:
    try:
        return _unpackb(data, raw=False, timestamp=3, strict_map_key=False)
    except Exception as msgpack_error:
        try:
            return json.loads(data)
        except Exception as json_error:
            return _DecodeFailure(
                f"not msgpack ({_error_text(msgpack_error)}) and not JSON ({_error_text(json_error)})", data
            )


def _model_decoder(msg_cls: type) -> Callable[[bytes], Any]:
    if isinstance(msg_cls, type) and issubclass(msg_cls, pydantic.BaseModel):
        model_name = msg_cls.__name__

        def decode_model(data: bytes) -> Any:
            try:
                unpacked = _unpackb(data, raw=False, timestamp=3, strict_map_key=False)
            except Exception as e:
                return _DecodeFailure(f"not msgpack ({_error_text(e)})", data)
            try:
                return _model_fields(msg_cls.model_validate(unpacked))
            except Exception as e:
                return _DecodeFailure(f"does not fit {model_name}: {_error_text(e)}", data)

        return decode_model

    def decode_msgpack(data: bytes) -> Any:
        try:
            return _unpackb(data, raw=False, timestamp=3, strict_map_key=False)
        except Exception as e:
            return _DecodeFailure(f"not msgpack ({_error_text(e)})", data)

    return decode_msgpack


@functools.lru_cache(maxsize=1024)
def _field_getter(key: Any) -> Callable[[Any], Any]:
    return operator.itemgetter(key)


def _model_fields(model: pydantic.BaseModel) -> dict[str, Any]:
    fields = model.__dict__
    extra = model.__pydantic_extra__
    return {**fields, **extra} if extra else fields


def decode_payload(data: bytes, msg_cls: type | None = None) -> tuple[Any, str | None]:
    """Decode a message payload the way a capture does.

    Without ``msg_cls``: msgpack (FastIoT's wire format), else JSON. With a pydantic model class the
    payload must be msgpack that validates as the model; with ``dict`` it must be msgpack.

    Args:
        data: The payload bytes.
        msg_cls: The model of the subject, if known.

    Returns:
        ``(payload, None)`` on success (a dict, a model, or a plain value), ``(None, error_text)`` if the
        payload does not decode.

    Example:
        >>> decode_payload(b'{"a": 1}')
        ({'a': 1}, None)
    """
    if msg_cls is None:
        result = _decode_msgpack_or_json(data)
        if isinstance(result, _DecodeFailure):
            return None, result.text
        return result, None
    try:
        unpacked = _unpackb(data, raw=False, timestamp=3, strict_map_key=False)
    except Exception as e:
        return None, f"not msgpack ({_error_text(e)})"
    if isinstance(msg_cls, type) and issubclass(msg_cls, pydantic.BaseModel):
        try:
            return msg_cls.model_validate(unpacked), None
        except Exception as e:
            return None, f"does not fit {msg_cls.__name__}: {_error_text(e)}"
    return unpacked, None


def flatten_payload(payload: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a decoded payload to one level: nested mappings and models become dotted keys ``a.b``.

    A payload that is not a mapping or model becomes ``{"value": payload}``.

    Example:
        >>> flatten_payload({"a": {"b": 1}, "c": 2})
        {'a.b': 1, 'c': 2}
    """
    if isinstance(payload, pydantic.BaseModel):
        payload = _model_fields(payload)
    if not isinstance(payload, dict):
        return {prefix or VALUE_COLUMN: payload}
    out: dict[str, Any] = {}
    for key, value in payload.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, (dict, pydantic.BaseModel)):
            out.update(flatten_payload(value, name))
        else:
            out[name] = value
    return out


def _collect_names(payload: dict[Any, Any], prefix: str, names: set[str]) -> None:
    for key, value in payload.items():
        name = f"{prefix}.{key}" if prefix else (key if type(key) is str else str(key))
        if isinstance(value, dict):
            _collect_names(value, name, names)
        elif isinstance(value, pydantic.BaseModel):
            _collect_names(_model_fields(value), name, names)
        else:
            names.add(name)


def _kind_of(value: Any) -> str:
    t = type(value)
    if t is float:
        return "float"
    if t is bool:
        return "bool"
    if t is int:
        return "int" if _INT64_MIN <= value <= _INT64_MAX else "object"
    if t is str:
        return "str"
    if isinstance(value, datetime):
        return "datetime"
    return "object"


class _Column:
    """One payload field in the ring buffer: a preallocated array plus what is needed to read it back.

    Kinds: ``float`` / ``int`` / ``bool`` (numpy arrays; int and bool with a mask of missing rows),
    ``str`` (an object array of deduplicated strings), ``datetime`` (an object array of datetimes,
    converted to ``datetime64[ns, UTC]`` when a DataFrame is built) and ``object`` (anything else).
    A slot that was never written reads back as missing (NaN, None or masked), so a column that
    appears late needs no back-filling. ``slots`` arguments are an int, a slice or an index array.
    """

    __slots__ = ("kind", "mask", "name", "strings", "values")

    def __init__(self, name: str, capacity: int, kind: str) -> None:
        self.name: str = name
        self.kind: str = kind
        self.mask: np.ndarray | None = None  # True where an int/bool row is missing
        self.strings: dict[str, str] | None = {} if kind == "str" else None
        if kind == "float":
            self.values: np.ndarray = np.full(capacity, np.nan)
        elif kind in ("int", "bool"):
            self.values = np.zeros(capacity, dtype=np.int64 if kind == "int" else np.bool_)
            self.mask = np.ones(capacity, dtype=np.bool_)
        else:
            self.values = np.empty(capacity, dtype=object)

    def _to_float(self) -> None:
        values = self.values.astype(np.float64)
        if self.mask is not None:
            values[self.mask] = np.nan
        self.values, self.mask, self.kind = values, None, "float"

    def _to_object(self) -> None:
        values = self.values.astype(object)
        if self.mask is not None:
            values[self.mask] = None
        self.values, self.mask, self.kind, self.strings = values, None, "object", None

    def store(self, i: int, value: Any) -> None:
        """Store one value in slot ``i``, changing the column's kind if the value does not fit it."""
        if value is None:
            self.set_missing(i)
            return
        kind = self.kind
        t = type(value)
        if kind == "float":
            if t is int and -_FLOAT_EXACT_INT <= value <= _FLOAT_EXACT_INT:
                self.values[i] = value
                return
            if t is not float:
                self._to_object()
        elif kind == "int":
            if t is float:
                self._to_float()
            elif t is not int or not _INT64_MIN <= value <= _INT64_MAX:
                self._to_object()
        elif kind == "bool":
            if t is not bool:
                self._to_object()
        elif kind == "str":
            if t is not str:
                self._to_object()
        elif kind == "datetime" and not isinstance(value, datetime):
            self._to_object()
        strings = self.strings
        if strings is not None:
            value = strings.setdefault(value, value)
        self.values[i] = value
        if self.mask is not None:
            self.mask[i] = False

    def store_many(self, slots: slice | np.ndarray, values: list[Any]) -> bool:
        """Store a batch of values if all fit the column as it is; ``False`` (nothing stored) if not."""
        kind = self.kind
        if kind == "str":
            # No type check needed when every value is a string seen before: only a str equals a str key.
            strings = self.strings
            assert strings is not None
            known = len(strings)
            try:
                canonical = list(map(strings.setdefault, values, values))
            except TypeError:  # an unhashable value, e.g. a list
                canonical = None
            if len(strings) != known:
                added = list(itertools.islice(reversed(strings), len(strings) - known))
                foreign = [key for key in added if type(key) is not str]
                for key in foreign:
                    del strings[key]
                if foreign:
                    return False
            if canonical is None:
                return False
            self.values[slots] = canonical
            return True
        types = set(map(type, values))
        if len(types) != 1:
            return False
        (t,) = types
        if kind == "float":
            if t is not float:
                return False
            self.values[slots] = values
        elif kind == "int":
            if t is not int:
                return False
            try:
                self.values[slots] = np.array(values, dtype=np.int64)
            except OverflowError:
                return False
        elif kind == "bool":
            if t is not bool:
                return False
            self.values[slots] = values
        elif kind == "datetime":
            if t is not datetime:
                return False
            # fromiter: numpy would inspect every object of a plain assignment for nested sequences
            self.values[slots] = np.fromiter(values, dtype=object, count=len(values))
        else:
            if t is type(None) or t is dict or issubclass(t, pydantic.BaseModel):
                return False
            # fromiter also keeps lists and tuples as single values instead of a second array dimension
            self.values[slots] = np.fromiter(values, dtype=object, count=len(values))
        if self.mask is not None:
            self.mask[slots] = False
        return True

    def set_missing(self, slots: int | slice | np.ndarray) -> None:
        if self.kind == "float":
            self.values[slots] = np.nan
        elif self.mask is not None:
            self.mask[slots] = True
        else:
            self.values[slots] = None

    def grow(self, capacity: int) -> None:
        old = self.values
        if self.kind == "float":
            values = np.full(capacity, np.nan)
        elif self.mask is not None:
            values = np.zeros(capacity, dtype=old.dtype)
            mask = np.ones(capacity, dtype=np.bool_)
            mask[: len(self.mask)] = self.mask
            self.mask = mask
        else:
            values = np.empty(capacity, dtype=object)
        values[: len(old)] = old
        self.values = values

    def housekeep(self) -> None:
        if self.strings is not None and len(self.strings) > _MAX_INTERNED_STRINGS:
            self.strings.clear()


@dataclass
class _Listener:
    callback: Callable[..., None]
    min_interval: float
    last_call: float = -math.inf
    mark: Any = None


@dataclass
class _Waiter:
    done: Callable[[], bool]
    future: asyncio.Future[None]
    # No need to look before the message with this seq arrives (0: look after every message).
    wake_seq: int = 0


class _BrokerObserver:
    """What captures and subject indexes share: subscriptions on a connection, listeners and waiters.

    Subclasses list their subscriptions in :meth:`_subscription_plan`, count handled messages in
    ``_received`` / ``_skipped`` and call :meth:`_wake` from their message callbacks when a message's
    seq reaches ``_wake_seq`` (via ``_trigger_seq``, a single comparison on the hot path). Listeners
    are called from the event loop, at most once per loop iteration and once per their ``min_interval``.
    """

    _what = "observer"

    def __init__(
        self,
        connection: NatsBrokerConnection | None,
        *,
        pending_msgs_limit: int,
        pending_bytes_limit: int,
    ) -> None:
        self._connection: NatsBrokerConnection | None = connection
        self._active_connection: NatsBrokerConnection | None = None
        self._registered: bool = False
        self._pending_msgs_limit: int = pending_msgs_limit
        self._pending_bytes_limit: int = pending_bytes_limit
        self._subscriptions: list[NatsSubscription] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[_Listener] = []
        self._waiters: list[_Waiter] = []
        self._wake_seq: int = _NEVER
        self._trigger_seq: int = _NEVER
        self._dispatch_scheduled: bool = False
        self._timer: asyncio.TimerHandle | None = None
        self._received: int = 0
        self._skipped: int = 0
        self._handled_at_start: int = 0
        self._lost_before: int = 0
        self._started_ns: int = 0
        self._paused: bool = False

    # -- life cycle ---------------------------------------------------------------------------------

    def _subscription_plan(self) -> list[tuple[str, Callable[[NatsMsg], Any]]]:
        raise NotImplementedError

    def _handled_total(self) -> int:
        """Messages the callbacks have seen since the object was made (never reset)."""
        raise NotImplementedError

    @property
    def is_running(self) -> bool:
        """Whether the subscriptions are active."""
        return bool(self._subscriptions)

    @property
    def connection(self) -> NatsBrokerConnection | None:
        """The broker connection in use (``None`` before the first start without an explicit one)."""
        return self._active_connection or self._connection

    async def start(self) -> Any:
        """Subscribe and start collecting. Starting a running object does nothing.

        Without an explicit connection this uses the notebook kernel's connection
        (``await fastiot.workbench.connection()``), and ``workbench.shutdown()`` stops the object.

        Returns:
            The object itself, so ``capture = await MessageCapture(...).start()`` works.
        """
        if self._subscriptions:
            return self
        connection = self._connection
        if connection is None:
            from fastiot import workbench

            connection = await workbench.connection()
        self._loop = asyncio.get_running_loop()
        self._active_connection = connection
        subscriptions: list[NatsSubscription] = []
        # Counted before subscribing: messages handled while the flush below waits are this start's too,
        # and counting them later would report them as lost.
        self._handled_at_start = self._handled_total()
        try:
            for pattern, callback in self._subscription_plan():
                subscriptions.append(
                    await connection.subscribe_raw(
                        pattern,
                        callback,
                        pending_msgs_limit=self._pending_msgs_limit,
                        pending_bytes_limit=self._pending_bytes_limit,
                    )
                )
            # After the flush the server knows the subscriptions: whatever is published next is seen.
            await connection.flush()
        except BaseException:
            for subscription in subscriptions:
                await _unsubscribe(subscription)
            raise
        self._subscriptions = subscriptions
        self._started_ns = _time_ns()
        if self._connection is None:
            from fastiot import workbench

            workbench.register(self)
            self._registered = True
        self._rearm()
        return self

    async def stop(self) -> None:
        """Unsubscribe. What was collected stays readable; :meth:`start` continues collecting."""
        if self._subscriptions:
            self._lost_before = self.lost
            subscriptions, self._subscriptions = self._subscriptions, []
            for subscription in subscriptions:
                await _unsubscribe(subscription)
        if self._registered:
            self._registered = False
            from fastiot import workbench

            try:
                workbench.unregister(self)
            except (KeyError, ValueError):
                pass  # already forgotten, e.g. while workbench.shutdown() stops everything
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._dispatch_now()  # last notifications; waiters that can no longer be satisfied fail
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(NotRunningError(f"the {self._what} was stopped while waiting"))
        self._waiters.clear()

    async def __aenter__(self) -> Any:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- counters -----------------------------------------------------------------------------------

    @property
    def lost(self) -> int:
        """Messages the NATS client discarded because this object fell behind (slow consumer).

        Zero unless the message rate exceeds what the callbacks handle for longer than the pending
        limits (``pending_msgs_limit`` / ``pending_bytes_limit``) can buffer.
        """
        lost = self._lost_before
        if self._subscriptions:
            delivered = sum(s.delivered - s.pending_msgs for s in self._subscriptions)
            lost += max(0, delivered - (self._handled_total() - self._handled_at_start))
        return lost

    @property
    def skipped(self) -> int:
        """Messages that arrived while paused and were not kept."""
        return self._skipped

    @property
    def is_paused(self) -> bool:
        """Whether arriving messages are ignored (see :meth:`pause`)."""
        return self._paused

    def pause(self) -> None:
        """Ignore arriving messages until :meth:`resume`; they are counted in :attr:`skipped`."""
        self._paused = True

    def resume(self) -> None:
        """Keep arriving messages again after :meth:`pause`."""
        self._paused = False

    # -- listeners and waiters ----------------------------------------------------------------------

    def _add_listener(
        self, callback: Callable[..., None], remove: bool, min_interval: float, mark: Any
    ) -> None:
        if remove:
            for listener in self._listeners:
                if listener.callback == callback:
                    self._listeners.remove(listener)
                    break
            else:
                raise ValueError(f"{callback!r} is not registered")
            self._rearm()
            return
        if asyncio.iscoroutinefunction(callback) or asyncio.iscoroutinefunction(
            getattr(callback, "__call__", None)  # noqa: B004 - async callable objects are refused too
        ):
            raise TypeError(
                "the callback must be a plain function, not async def: it runs on the event loop between "
                "messages; start a task with asyncio.create_task(...) inside it if it needs to await"
            )
        if not callable(callback):
            raise TypeError(f"the callback must be callable, got {type(callback).__name__}")
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval}")
        self._listeners.append(_Listener(callback=callback, min_interval=min_interval, mark=mark))
        self._rearm()

    def _rearm(self) -> None:
        """Have the hot path call :meth:`_wake` when a listener or waiter needs to look."""
        if not self._dispatch_scheduled:
            wake_seq = self._received if self._listeners else _NEVER
            for waiter in self._waiters:
                wake_seq = min(wake_seq, max(self._received, waiter.wake_seq))
            self._wake_seq = wake_seq
            self._update_trigger()

    def _update_trigger(self) -> None:
        """Recompute ``_trigger_seq``, the one number the hot path compares each message's seq with."""
        self._trigger_seq = self._wake_seq

    def _wake(self) -> None:
        self._wake_seq = _NEVER
        self._update_trigger()
        if not self._dispatch_scheduled and self._loop is not None:
            self._dispatch_scheduled = True
            self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        self._dispatch_now()
        self._rearm()

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()

    def _listener_news(self, listener: _Listener) -> Any:
        """What to call ``listener`` with, or ``None`` if nothing happened since its last call."""
        raise NotImplementedError

    def _call_listener(self, listener: _Listener, news: Any) -> None:
        try:
            listener.callback(news)
        except Exception:
            _logger.exception("a %s callback (%r) failed", self._what, listener.callback)

    def _dispatch_now(self) -> None:
        if self._waiters:
            pending = []
            for waiter in self._waiters:
                if waiter.future.done():
                    continue
                if waiter.done():
                    waiter.future.set_result(None)
                else:
                    pending.append(waiter)
            self._waiters = pending
        if not self._listeners:
            return
        now = time.monotonic()
        next_due = math.inf
        for listener in list(self._listeners):
            due = listener.last_call + listener.min_interval
            if now < due:
                next_due = min(next_due, due)
                continue
            news = self._listener_news(listener)
            if news is not None:
                listener.last_call = now
                self._call_listener(listener, news)
        if next_due < math.inf and self._timer is None and self._loop is not None and self._loop.is_running():
            self._timer = self._loop.call_later(next_due - now, self._on_timer)

    async def _wait(
        self,
        done: Callable[[], bool],
        timeout: float | None,
        describe: Callable[[], str],
        wake_seq: int = 0,
    ) -> None:
        if done():
            return
        if not self._subscriptions:
            raise NotRunningError(
                f"the {self._what} is not running, so {describe()} will not happen; "
                f"await start() first (or use `async with`)"
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(_Waiter(done=done, future=future, wake_seq=wake_seq))
        self._rearm()
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            paused = " (it is paused: call resume())" if self._paused else ""
            raise WaitTimeoutError(f"{describe()} did not happen within {timeout} s{paused}") from None
        finally:
            if not future.done():
                future.cancel()

    async def sync(self, timeout: float | None = DEFAULT_WAIT_TIMEOUT) -> None:
        """Wait until every message the server sent before this call has been handled.

        Publish from the same connection (or ``await publisher.flush()`` on the publisher's
        :class:`NatsBrokerConnection` first); after ``sync`` returns, those messages are in (or, while
        paused, were skipped by) this object.

        Raises:
            WaitTimeoutError: If the backlog is not handled within ``timeout`` seconds.
            NotRunningError: If the object is not started.
        """
        if not self._subscriptions or self._active_connection is None:
            raise NotRunningError(f"the {self._what} is not running; await start() first")
        try:
            await asyncio.wait_for(self._active_connection.flush(), timeout)
        except (asyncio.TimeoutError, nats.errors.TimeoutError):
            raise WaitTimeoutError(f"the NATS server did not answer a flush within {timeout} s") from None
        subscriptions = list(self._subscriptions)
        target = sum(s.delivered for s in subscriptions)

        def done() -> bool:
            return sum(s.delivered - s.pending_msgs for s in subscriptions) >= target

        await self._wait(done, timeout, lambda: "handling the messages already sent")


async def _unsubscribe(subscription: NatsSubscription) -> None:
    try:
        await subscription.unsubscribe()
    except Exception:  # the connection is gone, and the subscription with it
        pass


def _subject_patterns(subjects: CaptureSubjects) -> list[tuple[str, type | None]]:
    items: Iterable[Any]
    if isinstance(subjects, (str, Subject)):
        items = [subjects]
    elif isinstance(subjects, Sequence):
        items = subjects
    else:
        raise TypeError(
            "subjects must be a NATS pattern string, a Subject or a list of them, "
            f"got {type(subjects).__name__}"
        )
    result: list[tuple[str, type | None]] = []
    for item in items:
        if isinstance(item, Subject):
            result.append((item.name, item.msg_cls))
        elif isinstance(item, str):
            if (
                not item
                or any(c.isspace() for c in item)
                or ".." in item
                or item.startswith(".")
                or item.endswith(".")
            ):
                raise ValueError(
                    f"{item!r} is not a NATS subject pattern; use dot separated tokens with * or > "
                    f"wildcards, e.g. 'v1.thing.>'"
                )
            result.append((item, None))
        else:
            raise TypeError(f"each subject must be a pattern string or a Subject, got {type(item).__name__}")
    if not result:
        raise ValueError("give at least one subject to capture, e.g. MessageCapture('v1.thing.>')")
    return result


class MessageCapture(_BrokerObserver):
    """Capture the messages on NATS subjects into a bounded columnar buffer, readable as a DataFrame.

    Each message becomes one row: ``received_at``, ``subject`` and the payload's fields (nested
    mappings flattened to ``a.b`` columns). With a :class:`Subject` the payload is decoded to the
    subject's model; with a pattern string as msgpack (FastIoT's wire format), else JSON. A payload
    that does not decode is kept as a row with ``raw`` bytes and an ``error`` text, never dropped.
    A payload that is not a mapping lands in the ``value`` column. Only the newest ``max_rows`` rows
    are kept; :attr:`dropped` counts the evicted ones exactly.

    The NATS callback only decodes and stages a message; rows are written to the columns (numpy
    arrays, strings deduplicated) in batches, and every read (:meth:`to_dataframe`, :meth:`tail`,
    :attr:`rate`, ...) first writes what is staged, so reads always see every row counted in
    :attr:`received`. Everything runs on the event loop the capture was started on; use it from that
    loop's thread (in a notebook: from cells and widget callbacks).

    Args:
        subjects: A NATS pattern (``"v1.thing.>"``), a :class:`Subject`, or a list of them. A message
            that matches two of them is captured twice.
        connection: The broker connection; ``None`` uses the notebook kernel's connection
            (``fastiot.workbench``), which also stops the capture on ``workbench.shutdown()``.
        max_rows: How many of the newest rows to keep.
        pending_msgs_limit: Messages the NATS client may buffer for the capture before it drops some
            (see :attr:`lost`).
        pending_bytes_limit: The same limit in bytes.
        rate_window: Seconds :attr:`rate` averages over.
        max_columns: The most distinct payload fields kept; further fields are counted in
            :attr:`fields_not_stored`.

    Example:
        >>> from fastiot.capture import MessageCapture
        >>> from fastiot.msg.thing import Thing
        >>> async def main(connection):
        ...     capture = await MessageCapture(Thing.get_subject(">"), connection, max_rows=10_000).start()
        ...     await capture.wait_for(10, timeout=5)
        ...     await capture.stop()
        ...     return capture.to_dataframe()[["machine", "name", "value", "timestamp"]]
    """

    _what = "capture"

    def __init__(
        self,
        subjects: CaptureSubjects,
        connection: NatsBrokerConnection | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        *,
        pending_msgs_limit: int = DEFAULT_PENDING_MSGS_LIMIT,
        pending_bytes_limit: int = DEFAULT_PENDING_BYTES_LIMIT,
        rate_window: float = DEFAULT_RATE_WINDOW,
        max_columns: int = DEFAULT_MAX_COLUMNS,
    ) -> None:
        super().__init__(
            connection, pending_msgs_limit=pending_msgs_limit, pending_bytes_limit=pending_bytes_limit
        )
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise ValueError(f"max_rows must be a positive int, got {max_rows!r}")
        if rate_window <= 0:
            raise ValueError(f"rate_window must be > 0 seconds, got {rate_window}")
        self._targets: list[tuple[str, type | None]] = _subject_patterns(subjects)
        self._max_rows: int = max_rows
        self._max_columns: int = max_columns
        self._rate_window: float = rate_window
        self._subject_names: dict[str, str] = {}
        self._errors: dict[int, tuple[bytes, str]] = {}
        self._error_count: int = 0
        self._fields_not_stored: int = 0
        self._received_before_clear: int = 0
        self._reset_buffer()

    def _reset_buffer(self) -> None:
        self._capacity: int = min(self._max_rows, _INITIAL_CAPACITY)
        self._times: np.ndarray = np.zeros(self._capacity, dtype=np.int64)
        self._subject_values: np.ndarray = np.empty(self._capacity, dtype=object)
        self._columns: dict[str, _Column] = {}
        # Rows are staged flat as subject, received_ns, payload and written to the columns in batches:
        # numpy stores a batch of values far cheaper than one value at a time. (A flat list, not a list
        # of tuples: tuples that live until the flush would each cost the garbage collector a visit.)
        self._staged: list[Any] = []
        self._stage: Callable[[tuple[str, int, Any]], None] = self._staged.extend
        self._stored: int = 0  # rows written to the ring (the seq of the first staged row)
        self._errors.clear()
        self._error_count = 0
        self._update_trigger()

    def __repr__(self) -> str:
        state = "paused" if self._paused else ("running" if self.is_running else "stopped")
        patterns = ", ".join(p for p, _ in self._targets)
        return (
            f"<MessageCapture {patterns} {state}: {len(self)} of max {self._max_rows} rows, "
            f"{self.dropped} dropped, {self.errors} undecodable>"
        )

    # -- the hot path -------------------------------------------------------------------------------

    def _subscription_plan(self) -> list[tuple[str, Callable[[NatsMsg], Any]]]:
        plan: list[tuple[str, Callable[[NatsMsg], Any]]] = []
        for pattern, msg_cls in self._targets:
            if msg_cls is None:
                plan.append((pattern, self._on_msg))
            else:
                plan.append((pattern, self._model_callback(_model_decoder(msg_cls))))
        return plan

    def _model_callback(self, decode: Callable[[bytes], Any]) -> Callable[[NatsMsg], Any]:
        async def on_model_msg(msg: NatsMsg) -> None:
            if self._paused:
                self._on_paused_msg()
                return
            seq = self._received
            self._stage((msg.subject, _time_ns(), decode(msg.data)))
            self._received = seq + 1
            if seq >= self._trigger_seq:
                self._on_trigger(seq)

        return on_model_msg

    async def _on_msg(self, msg: NatsMsg) -> None:
        # The pattern capture's NATS callback, run for every message: decode, stage, count, nothing else.
        if self._paused:
            self._on_paused_msg()
            return
        data = msg.data
        try:
            payload = _unpackb(data, raw=False, timestamp=3, strict_map_key=False)
        except Exception:
            payload = _decode_msgpack_or_json(data)
        seq = self._received
        self._stage((msg.subject, _time_ns(), payload))
        self._received = seq + 1
        if seq >= self._trigger_seq:
            self._on_trigger(seq)

    def _on_paused_msg(self) -> None:
        self._skipped += 1
        if self._waiters:
            self._wake()  # sync() waits for skipped messages too

    def _update_trigger(self) -> None:
        # The hot path compares one number: the seq at which the staged batch is full or someone waits.
        self._trigger_seq = min(self._wake_seq, self._stored + _BATCH_ROWS - 1)

    def _on_trigger(self, seq: int) -> None:
        if len(self._staged) >= 3 * _BATCH_ROWS:
            self._flush()
        if seq >= self._wake_seq:
            self._wake()
        self._update_trigger()

    def _flush(self) -> None:
        """Write the staged rows into the ring buffer."""
        staged = self._staged
        if not staged:
            return
        self._staged = []
        self._stage = self._staged.extend
        subjects, times, payloads = staged[0::3], staged[1::3], staged[2::3]
        seq0, n = self._stored, len(payloads)
        self._stored = seq0 + n
        self._update_trigger()
        max_rows = self._max_rows
        if n > max_rows:  # rows that would be evicted at once are never written, only counted
            skip = n - max_rows
            self._error_count += sum(1 for p in payloads[:skip] if type(p) is _DecodeFailure)
            subjects, times, payloads = subjects[skip:], times[skip:], payloads[skip:]
            seq0, n = seq0 + skip, max_rows
        if seq0 + n > self._capacity and self._capacity < max_rows:
            self._grow(min(max_rows, max(self._capacity * 2, seq0 + n)))
        names = self._subject_names
        subjects = list(map(names.setdefault, subjects, subjects))
        if len(names) > _MAX_SUBJECT_NAMES:
            names.clear()
        first = seq0 % max_rows
        if first + n <= max_rows:
            self._write(subjects, times, payloads, first, seq0)
        else:
            k = max_rows - first
            self._write(subjects[:k], times[:k], payloads[:k], first, seq0)
            self._write(subjects[k:], times[k:], payloads[k:], 0, seq0 + k)
        for column in self._columns.values():
            column.housekeep()

    def _write(
        self, subjects: list[str], times: list[int], payloads: list[Any], slot0: int, seq0: int
    ) -> None:
        m = len(payloads)
        slots = slice(slot0, slot0 + m)
        self._times[slots] = times
        self._subject_values[slots] = subjects
        first = payloads[0]
        if type(first) is dict and first:
            # The common case: every payload of the batch has the same fields.
            keys = tuple(first)
            try:
                # Non-dicts fail len() or the getters. One list per field: per-row tuples would each
                # cost the garbage collector a visit.
                uniform = set(map(len, payloads)) == {len(keys)}
                columns_values = [list(map(_field_getter(key), payloads)) for key in keys] if uniform else []
            except (KeyError, TypeError, IndexError):
                uniform = False
            if uniform:
                if not self._write_group(keys, columns_values, slots, range(slot0, slot0 + m)):
                    for k, payload in enumerate(payloads):
                        self._store_row(payload, slot0 + k, seq0 + k)
                return
        self._write_mixed(payloads, slot0, seq0)

    def _write_mixed(self, payloads: Sequence[Any], slot0: int, seq0: int) -> None:
        groups: dict[tuple[Any, ...], list[int]] = {}
        singles: list[int] = []
        for k, payload in enumerate(payloads):
            if type(payload) is dict and payload:
                groups.setdefault(tuple(payload), []).append(k)
            else:
                singles.append(k)
        for keys, members in groups.items():
            group = [payloads[k] for k in members]
            slot_list = [slot0 + k for k in members]
            if len(members) < _MIN_GROUP_ROWS or not self._write_group(
                keys, [list(map(_field_getter(key), group)) for key in keys], np.array(slot_list), slot_list
            ):
                singles.extend(members)
        for k in sorted(singles):
            self._store_row(payloads[k], slot0 + k, seq0 + k)

    def _write_group(
        self,
        keys: tuple[Any, ...],
        columns_values: list[list[Any]],
        slots: slice | np.ndarray,
        slot_list: Sequence[int],
    ) -> bool:
        """Write rows that share their fields column by column; ``False`` if the rows need the slow path.

        Columns written before a ``False`` are overwritten by the slow path, which writes whole rows.
        """
        if not all(type(key) is str and "." not in key for key in keys):
            return False
        columns = self._columns
        for key, values in zip(keys, columns_values, strict=True):
            column = columns.get(key)
            if column is not None and column.store_many(slots, values):
                continue
            types = set(map(type, values))
            if dict in types or any(issubclass(t, pydantic.BaseModel) for t in types):
                return False  # nested payloads are flattened row by row
            for slot, value in zip(slot_list, values, strict=True):
                self._store(key, value, slot)
        if len(columns) != len(keys):
            present = set(keys)
            for name, column in columns.items():
                if name not in present:
                    column.set_missing(slots)
        return True

    def _store_row(self, payload: Any, i: int, seq: int) -> None:
        try:
            if type(payload) is _DecodeFailure:
                self._store_error(i, seq, payload.data, payload.text)
                return
            if not isinstance(payload, dict):
                payload = {VALUE_COLUMN: payload}
            for key, value in payload.items():
                self._store(key, value, i)
            present: set[str] = set()
            _collect_names(payload, "", present)
            for name, column in self._columns.items():
                if name not in present:
                    column.set_missing(i)
        except Exception as e:  # a bug here must cost one row, not the capture
            data = payload.data if type(payload) is _DecodeFailure else b""
            self._store_error(i, seq, data, f"could not store the decoded payload: {_error_text(e)}")

    def _store(self, key: Any, value: Any, i: int) -> None:
        if type(key) is not str:
            key = str(key)
        if isinstance(value, dict):
            for sub_key, sub_value in value.items():
                self._store(f"{key}.{sub_key}", sub_value, i)
            return
        if isinstance(value, pydantic.BaseModel):
            self._store(key, _model_fields(value), i)
            return
        column = self._columns.get(key)
        if column is None:
            if value is None:
                return  # a column is made when its first value comes; until then it is missing anyway
            if len(self._columns) >= self._max_columns:
                if self._fields_not_stored == 0:
                    _logger.warning(
                        "capture %s: more than %d distinct payload fields; further fields are not stored "
                        "(raise max_columns to keep them)",
                        ", ".join(self.patterns),
                        self._max_columns,
                    )
                self._fields_not_stored += 1
                return
            column = self._columns[key] = _Column(key, self._capacity, _kind_of(value))
        column.store(i, value)

    def _store_error(self, i: int, seq: int, data: bytes, text: str) -> None:
        for column in self._columns.values():
            column.set_missing(i)
        errors = self._errors
        errors[seq] = (bytes(data), text)
        self._error_count += 1
        # Rows are numbered in arrival order, so the evicted ones are at the front of the dict.
        oldest = self._stored - self._max_rows
        while errors:
            first = next(iter(errors))
            if first >= oldest:
                break
            del errors[first]

    def _grow(self, capacity: int) -> None:
        times = np.zeros(capacity, dtype=np.int64)
        times[: self._capacity] = self._times
        subjects = np.empty(capacity, dtype=object)
        subjects[: self._capacity] = self._subject_values
        self._times, self._subject_values = times, subjects
        for column in self._columns.values():
            column.grow(capacity)
        self._capacity = capacity

    # -- counters -----------------------------------------------------------------------------------

    def _handled_total(self) -> int:
        return self._received_before_clear + self._received + self._skipped

    def __len__(self) -> int:
        return min(self._received, self._max_rows)

    @property
    def max_rows(self) -> int:
        """How many of the newest rows the capture keeps."""
        return self._max_rows

    @property
    def patterns(self) -> list[str]:
        """The NATS subject patterns captured."""
        return [pattern for pattern, _ in self._targets]

    @property
    def received(self) -> int:
        """Rows added since the capture was made or last cleared, including evicted ones."""
        return self._received

    @property
    def dropped(self) -> int:
        """Rows evicted from the ring buffer to make room for newer ones (exact)."""
        return max(0, self._received - self._max_rows)

    @property
    def errors(self) -> int:
        """Rows whose payload did not decode, since the capture was made or last cleared."""
        self._flush()
        return self._error_count

    @property
    def fields_not_stored(self) -> int:
        """Field values not stored because the payloads had more than ``max_columns`` distinct fields."""
        return self._fields_not_stored

    @property
    def columns(self) -> list[str]:
        """The payload columns seen so far (flattened names), in the order :meth:`to_dataframe` uses."""
        self._flush()
        return self._column_order()

    def _live_range(self) -> tuple[int, int]:
        """Flush the staged rows and return the seq range of the rows in the buffer."""
        self._flush()
        return self._received - len(self), self._received

    def _slices(self, start_seq: int, stop_seq: int) -> list[slice]:
        if stop_seq <= start_seq:
            return []
        first = start_seq % self._max_rows
        last = (stop_seq - 1) % self._max_rows + 1
        if first < last:
            return [slice(first, last)]
        return [slice(first, self._max_rows), slice(0, last)]

    def _take(self, array: np.ndarray, slices: list[slice]) -> np.ndarray:
        if not slices:
            return array[:0].copy()
        if len(slices) == 1:
            return array[slices[0]].copy()
        return np.concatenate([array[s] for s in slices])

    @property
    def subjects(self) -> list[str]:
        """The distinct subjects of the rows in the buffer, sorted."""
        found: set[str] = set()
        for part in self._slices(*self._live_range()):
            found.update(self._subject_values[part])
        return sorted(found)

    @property
    def rate(self) -> float:
        """Rows per second over the last ``rate_window`` seconds (or since start, if shorter)."""
        if not self._received:
            return 0.0
        now = _time_ns()
        times = self._take(self._times, self._slices(*self._live_range()))
        span_s = self._rate_window
        if self._started_ns:
            span_s = min(span_s, max(1.0, (now - self._started_ns) / 1e9))
        recent = int(np.count_nonzero(times >= now - int(span_s * 1e9)))
        if recent and recent == len(times) and self.dropped:
            # The buffer holds less time than the window: use the time it does cover.
            return recent / max((now - int(times.min())) / 1e9, 1e-3)
        return recent / span_s

    # -- control ------------------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget every row; :attr:`received`, :attr:`dropped` and :attr:`errors` start again at 0.

        Listeners registered with :meth:`on_message` are called with 0.
        """
        self._received_before_clear += self._received
        self._received = 0
        self._reset_buffer()
        for listener in self._listeners:
            listener.mark = self._received_before_clear
            self._call_listener(listener, 0)
        self._rearm()

    def on_message(
        self, callback: MessageCallback, remove: bool = False, *, min_interval: float = 0.0
    ) -> None:
        """Call ``callback(n)`` after new rows arrived, with the number of rows since its last call.

        Calls are coalesced: at most one per event-loop iteration and at most one every
        ``min_interval`` seconds, so a view can redraw from :meth:`tail` without slowing the capture.
        After :meth:`clear` the callback gets ``0``.

        Args:
            callback: A plain (not async) function taking the number of new rows.
            remove: Unregister ``callback`` instead.
            min_interval: The least time in seconds between two calls of this callback.

        Raises:
            TypeError: If ``callback`` is an async function or not callable.

        Example:
            >>> capture = MessageCapture("v1.thing.>")
            >>> capture.on_message(lambda n: print(f"{n} new rows"), min_interval=0.5)
        """
        self._add_listener(callback, remove, min_interval, mark=self._received_before_clear + self._received)

    def _listener_news(self, listener: _Listener) -> Any:
        total = self._received_before_clear + self._received
        new = total - listener.mark
        if new <= 0:
            return None
        listener.mark = total
        return new

    async def wait_for(self, n: int, timeout: float | None = DEFAULT_WAIT_TIMEOUT) -> int:
        """Wait until ``n`` rows have arrived (since the capture was made or last cleared).

        Returns at once if they have; evicted rows count, so ``n`` may exceed ``max_rows``.

        Args:
            n: The number of rows to wait for.
            timeout: Seconds to wait at most; ``None`` waits forever.

        Returns:
            :attr:`received` when the wait ended.

        Raises:
            WaitTimeoutError: If fewer than ``n`` rows arrived within ``timeout``.
            NotRunningError: If the capture is not started (or is stopped while waiting).

        Example:
            >>> async def main(capture):
            ...     await capture.wait_for(5, timeout=2.0)
        """
        await self._wait(
            lambda: self._received >= n,
            timeout,
            lambda: f"{n} rows on {', '.join(self.patterns)} (got {self._received})",
            wake_seq=n - 1,
        )
        return self._received

    # -- reading ------------------------------------------------------------------------------------

    def _column_order(self) -> list[str]:
        names = list(self._columns)
        if all(name in self._columns for name in _THING_COLUMN_ORDER):
            names = list(_THING_COLUMN_ORDER) + [n for n in names if n not in _THING_COLUMN_ORDER]
        return names

    def to_dataframe(self) -> pd.DataFrame:
        """The rows in the buffer, oldest first, as a new DataFrame (later messages do not change it).

        Columns: ``received_at`` (``datetime64[ns, UTC]``), ``subject``, then the payload fields
        flattened (``a.b`` for nested mappings; for Thing: machine, name, value, unit, timestamp,
        measurement_id), and ``raw`` / ``error`` if rows did not decode. Datetimes are tz-aware UTC,
        numbers numeric (integer fields with missing values as nullable ``Int64``), text ``str``.
        Payload fields named like a leading column get a ``payload.`` prefix.

        Example:
            >>> MessageCapture("v1.thing.>").to_dataframe().columns.tolist()
            ['received_at', 'subject']
        """
        start_seq, stop_seq = self._live_range()
        return self._frame(start_seq, stop_seq)

    def tail(self, n: int = 10) -> pd.DataFrame:
        """The newest ``n`` rows as a DataFrame (cheap: only those rows are converted).

        Example:
            >>> MessageCapture("v1.thing.>").tail(5).empty
            True
        """
        start_seq, stop_seq = self._live_range()
        return self._frame(max(start_seq, stop_seq - max(0, n)), stop_seq)

    def _frame(self, start_seq: int, stop_seq: int) -> pd.DataFrame:
        import pandas as pd

        slices = self._slices(start_seq, stop_seq)
        n = max(0, stop_seq - start_seq)
        data: dict[str, Any] = {
            "received_at": pd.array(
                self._take(self._times, slices).view("M8[ns]"), dtype=pd.DatetimeTZDtype("ns", "UTC")
            ),
            "subject": string_array(self._take(self._subject_values, slices)),
        }
        for name in self._column_order():
            column = self._columns[name]
            key = f"payload.{name}" if name in _META_COLUMNS else name
            data[key] = _column_to_pandas(
                column.kind,
                self._take(column.values, slices),
                None if column.mask is None else self._take(column.mask, slices),
            )
        errors = [
            (seq, raw, text) for seq, (raw, text) in self._errors.items() if start_seq <= seq < stop_seq
        ]
        if errors:
            raws = np.full(n, None, dtype=object)
            texts = np.full(n, None, dtype=object)
            for seq, raw, text in errors:
                raws[seq - start_seq] = raw
                texts[seq - start_seq] = text
            raw_name = RAW_COLUMN if RAW_COLUMN not in data else f"_{RAW_COLUMN}"
            error_name = ERROR_COLUMN if ERROR_COLUMN not in data else f"_{ERROR_COLUMN}"
            data[raw_name] = raws
            data[error_name] = string_array(texts)
        return pd.DataFrame(data, copy=False)

    def to_csv(self, path: str | Path, **kwargs: Any) -> Path:
        """Write :meth:`to_dataframe` to a CSV file (no index; raw bytes as hex; datetimes ISO 8601 UTC).

        Args:
            path: The file to write.
            kwargs: Passed on to :meth:`pandas.DataFrame.to_csv`.

        Returns:
            The path written.

        Example:
            >>> capture.to_csv("things.csv")  # doctest: +SKIP
        """
        frame = self.to_dataframe()
        for name in (RAW_COLUMN, f"_{RAW_COLUMN}"):
            if name in frame.columns and frame[name].dtype == object:
                frame[name] = frame[name].map(lambda v: v.hex() if isinstance(v, bytes) else v)
        kwargs.setdefault("index", False)
        frame.to_csv(path, **kwargs)
        return Path(path)

    def to_parquet(self, path: str | Path, **kwargs: Any) -> Path:
        """Write :meth:`to_dataframe` to a Parquet file (needs the ``parquet`` extra, i.e. pyarrow).

        Columns whose values have mixed types that Parquet cannot hold in one column are written as text.

        Args:
            path: The file to write.
            kwargs: Passed on to :meth:`pandas.DataFrame.to_parquet`.

        Returns:
            The path written.

        Raises:
            ParquetUnavailableError: If pyarrow is not installed.

        Example:
            >>> capture.to_parquet("things.parquet")  # doctest: +SKIP
        """
        try:
            import pyarrow as pa
        except ImportError as e:
            raise ParquetUnavailableError(
                "exporting Parquet needs pyarrow: pip install 'fastiot-workbench[parquet]' "
                "(or use to_csv(), which needs nothing extra)"
            ) from e
        frame = self.to_dataframe()
        for name in frame.columns:
            if frame[name].dtype == object:
                try:
                    pa.array(frame[name], from_pandas=True)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                    frame[name] = frame[name].map(_text_or_none)
        kwargs.setdefault("index", False)
        kwargs.setdefault("engine", "pyarrow")
        frame.to_parquet(path, **kwargs)
        return Path(path)


def _text_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def string_array(values: Any) -> Any:
    """A pandas text array in which missing values stay missing (never the text ``'None'``).

    pandas 3 does this for ``dtype="str"``; pandas 2 would turn ``None`` into ``'None'`` there, so
    it gets its nullable ``StringDtype`` instead.
    """
    import pandas as pd

    if int(pd.__version__.split(".", 1)[0]) >= 3:
        return pd.array(values, dtype="str")
    return pd.array(values, dtype=pd.StringDtype())


def _column_to_pandas(kind: str, values: np.ndarray, mask: np.ndarray | None) -> Any:
    """Convert a copy of one column's rows to a pandas-ready array of the column's dtype."""
    import pandas as pd

    if kind in ("int", "bool") and mask is not None:
        if not mask.any():
            return values
        if kind == "int":
            return pd.arrays.IntegerArray(values, mask)
        return pd.arrays.BooleanArray(values, mask)
    if kind == "str":
        return string_array(values)
    if kind == "datetime":
        return _datetimes_to_pandas(values)
    return values


def _datetimes_to_pandas(values: np.ndarray) -> Any:
    import pandas as pd

    try:
        index = pd.DatetimeIndex(values)
    except (TypeError, ValueError):
        # Mixed time zones or naive values: fastiot treats naive datetimes as UTC.
        index = pd.to_datetime(
            [
                v if v is None or getattr(v, "tzinfo", None) is not None else v.replace(tzinfo=timezone.utc)
                for v in values
            ],
            utc=True,
        )
    if index.tz is None:
        index = index.tz_localize("UTC")
    elif str(index.tz) != "UTC":
        index = index.tz_convert("UTC")
    return index.as_unit("ns").array
