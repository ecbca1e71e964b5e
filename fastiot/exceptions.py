"""Every error type of fastiot, in one place. Each says what went wrong and what to do next.

``FastIoTError`` catches everything fastiot raises on purpose; a few groups below it let code catch a
kind of trouble (the connection, a message, history, bad input) without naming every error. The second
base of a class (in parentheses) lets code written for the standard library or nats-py catch it as
before. Errors only a widget raises live with the widgets (``fastiot_widgets.errors``), derived from
``FastIoTError`` too::

    FastIoTError
    ├── BrokerError                          the connection to NATS and the local nats-server
    │   ├── BrokerUnavailableError           (ConnectionError) no NATS server accepted the connection
    │   │   └── BrokerAuthenticationError    the server rejected the credentials
    │   ├── PermissionDeniedError            (PermissionError) the server refused a subscribe/publish/JS call
    │   ├── RequestTimeoutError              (TimeoutError, nats TimeoutError) no reply in time
    │   ├── PublishBufferFullError           (nats OutboundBufferLimitError) reconnect buffer full
    │   ├── PayloadTooLargeError             (nats MaxPayloadError) larger than max_payload
    │   ├── SyncCallOnLoopThreadError        (RuntimeError) a blocking call on the loop's own thread
    │   ├── NatsServerBinaryNotFound         (FileNotFoundError) nats-server is not installed
    │   ├── NatsServerStartError             (RuntimeError) nats-server did not come up
    │   └── MqttUnavailableError             (ConnectionError) no MQTT listener to publish through
    │       └── MqttAuthenticationError      the MQTT listener refused the login
    ├── MessageError                         subscriptions and handling: messages, payloads, waits
    │   ├── DeserializationError             (ValueError) a payload is not valid msgpack / not the model
    │   ├── BadMessageError                  (ValueError) a message from the wire is malformed
    │   ├── MessageHandlingError             (0.1 only; handlers' own errors are reported now)
    │   ├── ReplyHandlerError                the replying service failed
    │   ├── PathNotFoundError                (KeyError) a field path names no field of a payload
    │   ├── MessageNotKeptError              (IndexError) a subject index no longer keeps that message
    │   ├── WaitTimeoutError                 (TimeoutError) wait_for / sync saw too little in time
    │   └── NotRunningError                  (RuntimeError) a capture or index is not started
    ├── ServiceLifecycleError                starting, stopping and replacing services
    │   ├── ShutdownRequestedInterruption    a service is asked to shut down (run_coro)
    │   ├── ServiceStartError                (RuntimeError) a service crashed while starting
    │   ├── ServiceReplacedError             (RuntimeError) a newer %%service cell replaced this one
    │   └── BackgroundProcessError           (RuntimeError) testlib's service process did not start
    ├── ConfigurationError                   bad input: a setting or argument refused before anything runs
    │   ├── SettingsError                    (ValueError) a FASTIOT_* variable has a value that does not fit
    │   ├── InvalidSubjectError              (ValueError) not a NATS subject or pattern (``v1.>.x``, ``a..b``)
    │   │   ├── SubjectTooLongError          too long for a NATS protocol line
    │   │   └── InvalidTopicError            not an MQTT topic or filter NATS can carry
    │   ├── SubjectHierarchyError            (RuntimeError) a subject does not fit its model's hierarchy
    │   ├── InvalidPathError                 (ValueError) a field path is not written as paths are
    │   ├── DecoderRegistrationError         (ValueError) a payload decoder cannot be registered
    │   │   └── InvalidDecoderSubjectError   (InvalidSubjectError) a decoder's subject pattern
    │   ├── ParquetUnavailableError          (ImportError) Parquet needs the ``parquet`` extra
    │   ├── FormError                        (ValueError) publisher inputs do not convert to field values
    │   ├── TemplateFileError                (ValueError) a publisher templates file is unreadable or too big
    │   ├── LivePlotError                    (ValueError) a live series' subjects, fields or window unusable
    │   ├── GridFilterError                  (ValueError) a grid's column filter cannot be read
    │   ├── CommandRegistrationError         (ValueError) a fastiot-workbench subcommand cannot be registered
    │   ├── ServiceExportError               (ValueError) a service cannot be exported or loaded from a module
    │   ├── MqttUrlError                     (ValueError) an MQTT listener not given as mqtt://HOST:PORT
    │   └── ConfigFileNotFoundError          (FileNotFoundError) no YAML configuration for a service
    ├── HistoryError                         recordings, replays and key-value buckets (JetStream)
    │   ├── JetStreamUnavailableError        (RuntimeError) the server has no JetStream (or it is not ready)
    │   ├── HistoryServerError               the server refused a JetStream request; its reason included
    │   ├── InvalidRecordingError            (ValueError) a bad name, subjects or setting, before any call
    │   │   └── InvalidRecordingSubjectError (InvalidSubjectError) a recording's subject pattern
    │   ├── SubjectsOverlapError             (ValueError) another stream records these subjects already
    │   ├── RecordingExistsError             (ValueError) the name is taken with another configuration
    │   ├── RecordingNotFoundError           (LookupError) no such recording
    │   │   └── RecordingDeletedError        it was deleted while in use
    │   ├── InvalidRangeError                (ValueError) a start/end that is no time or sequence
    │   ├── ReplayLoopError                  (ValueError) a replay would record its own messages again
    │   ├── HistoryReadError                 (RuntimeError) the server stopped delivering a range
    │   └── BucketNotFoundError              (LookupError) no such key-value bucket
    └── ServiceError, SQLSchemaCheckError, CSVError   FastIoT 1.1's names, raised by no fastiot code
"""

from __future__ import annotations

import nats.errors

__all__ = [
    "BackgroundProcessError",
    "BadMessageError",
    "BrokerAuthenticationError",
    "BrokerError",
    "BrokerUnavailableError",
    "BucketNotFoundError",
    "CSVError",
    "CommandRegistrationError",
    "ConfigFileNotFoundError",
    "ConfigurationError",
    "DecoderRegistrationError",
    "DeserializationError",
    "FastIoTError",
    "FormError",
    "GridFilterError",
    "HistoryError",
    "HistoryReadError",
    "HistoryServerError",
    "InvalidDecoderSubjectError",
    "InvalidPathError",
    "InvalidRangeError",
    "InvalidRecordingError",
    "InvalidRecordingSubjectError",
    "InvalidSubjectError",
    "InvalidTopicError",
    "JetStreamUnavailableError",
    "LivePlotError",
    "MessageError",
    "MessageHandlingError",
    "MessageNotKeptError",
    "MqttAuthenticationError",
    "MqttUnavailableError",
    "MqttUrlError",
    "NatsServerBinaryNotFound",
    "NatsServerStartError",
    "NotRunningError",
    "ParquetUnavailableError",
    "PathNotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PublishBufferFullError",
    "RecordingDeletedError",
    "RecordingExistsError",
    "RecordingNotFoundError",
    "ReplayLoopError",
    "ReplyHandlerError",
    "RequestTimeoutError",
    "SQLSchemaCheckError",
    "ServiceError",
    "ServiceExportError",
    "ServiceLifecycleError",
    "ServiceReplacedError",
    "ServiceStartError",
    "SettingsError",
    "ShutdownRequestedInterruption",
    "SubjectHierarchyError",
    "SubjectTooLongError",
    "SubjectsOverlapError",
    "SyncCallOnLoopThreadError",
    "TemplateFileError",
    "WaitTimeoutError",
]


class FastIoTError(Exception):
    """Base class of every error fastiot raises on purpose."""


class BrokerError(FastIoTError):
    """The connection to NATS failed or refused something.

    Connecting, publishing, a request, the local nats-server.
    """


class MessageError(FastIoTError):
    """A subscription's messages went wrong.

    One that cannot be read or decoded, a handler or replier that failed, a capture or subject index that
    does not have what was asked for.
    """


class ServiceLifecycleError(FastIoTError):
    """A service did not start, was stopped or was replaced."""


class ConfigurationError(FastIoTError):
    """Bad input: a setting or an argument that cannot work, refused before anything is sent or started."""


class SettingsError(ConfigurationError, ValueError):
    """A ``FASTIOT_*`` environment variable has a value that does not fit; the message names it.

    A ``ValueError``, so code that caught the bad-setting errors of earlier versions still catches it.

    Args:
        variable: The environment variable.
        value: Its value as set.
        message: What is wrong and what to set instead.

    Attributes:
        variable: The environment variable, e.g. ``FASTIOT_NATS_PORT``.
        value: Its value as set.
    """

    def __init__(self, variable: str, value: object, message: str) -> None:
        self.variable = variable
        self.value = value
        super().__init__(message)


class ShutdownRequestedInterruption(ServiceLifecycleError):
    """Raised by :meth:`FastIoTService.run_coro` when the service is asked to shut down.

    Args:
        message: The error's text.
    """

    def __init__(self, message: str = "The service is shutting down") -> None:
        super().__init__(message)


class BrokerUnavailableError(BrokerError, ConnectionError):
    """No NATS server accepted the connection at the configured URLs."""


class BrokerAuthenticationError(BrokerUnavailableError):
    """The NATS server rejected the credentials (user/password, token, creds file or TLS)."""


class PermissionDeniedError(BrokerError, PermissionError):
    """The NATS server refused this user an operation: a subscription, a publish or a JetStream call.

    Raised by the operation that asked, at once (never a timeout, never only a log line); the
    connection keeps working for everything else the user may do.

    Args:
        subject: The subject (or pattern) refused.
        operation: What was refused (see :attr:`operation`).
        queue: The queue group of a refused queue subscription.
        more: Further refusals since the last flush, named in the message.

    Attributes:
        subject: The subject (or pattern) that was refused, as the server named it (nats-py lowercases
            the server's text, so a refusal that only the server reported is in lowercase).
        operation: ``"subscribe"``, ``"publish"``, or the JetStream API call (``"STREAM.CREATE"``).
        queue: The queue group of a refused queue subscription.
    """

    def __init__(self, subject: str, operation: str, *, queue: str | None = None, more: int = 0) -> None:
        self.subject = subject
        self.operation = operation
        self.queue = queue
        self.more = more
        super().__init__(_permission_message(subject, operation, queue, more))


def _permission_message(subject: str, operation: str, queue: str | None, more: int) -> str:
    also = f" ({more} more refusal{'' if more == 1 else 's'} since the last flush)" if more else ""
    if operation == "subscribe":
        group = f" in queue group {queue!r}" if queue else ""
        if subject.startswith(("_INBOX.", "_inbox.")) or ".inbox." in subject.casefold():
            return (
                f"the NATS server refused to let this user subscribe to the reply inbox {subject!r}{group}, "
                "so no request can get its reply: ask the NATS administrator for subscribe permission on "
                "'_INBOX.>', or set FASTIOT_NATS_INBOX_PREFIX to an inbox prefix your user may subscribe to"
            )
        return (
            f"the NATS server refused to let this user subscribe to {subject!r}{group}: ask the NATS "
            f"administrator for subscribe permission on {subject!r}, or use a narrower pattern that your "
            "permissions cover"
        )
    if operation == "publish":
        return (
            f"the NATS server refused to let this user publish to {subject!r}{also}: ask the NATS "
            f"administrator for publish permission on {subject!r}"
        )
    return (
        f"the NATS server refused the JetStream call {operation} ({subject!r}){also}: ask the NATS "
        f"administrator for publish permission on {subject!r} (or on '$JS.API.>' for every JetStream "
        "feature of the workbench)"
    )


class DeserializationError(MessageError, ValueError):
    """A payload is not valid msgpack (or not what the subject's model expects)."""


class MessageHandlingError(MessageError):
    """A message on a subject could not be decoded, validated or handled (fastiot 0.1).

    fastiot no longer raises it: ``subscription_error_cb`` and ``check_pending_error`` get the
    handler's own exception (or ``DeserializationError`` / ``pydantic.ValidationError``) with
    ``subject`` and ``payload`` attached, as FastIoT does. Kept so code that names it still imports.

    Args:
        subject: The NATS subject the message arrived on.
        payload: The raw bytes of the message.
        cause: The error that decoding, validating or handling it raised.

    Attributes:
        subject: The NATS subject the message arrived on.
        payload: The raw bytes of the message.
    """

    def __init__(self, subject: str, payload: bytes, cause: BaseException) -> None:
        self.subject = subject
        self.payload = payload
        self.cause = cause
        preview = payload[:32].hex()
        super().__init__(
            f"message on subject {subject!r} ({len(payload)} bytes, starts {preview or '<empty>'}) "
            f"failed: {type(cause).__name__}: {cause}"
        )


class BadMessageError(MessageError, ValueError):
    """A message arrived whose subject, reply subject or header block is malformed (e.g. not UTF-8).

    Any client that can publish can send one. It is dropped, reported through the connection's error
    reporting (``subscription_error_cb`` of the subscription it was for, and the log), and the
    connection goes on delivering.

    Args:
        subject, reply, payload, headers, sid, cause: As the attributes below.

    Attributes:
        subject: The raw subject bytes.
        reply: The raw reply subject bytes (empty if none).
        payload: The raw payload.
        headers: The raw header block, or None.
        sid: The id of the subscription it was delivered for.
        cause: The error that parsing it raised.
    """

    def __init__(
        self,
        *,
        subject: bytes,
        reply: bytes,
        payload: bytes,
        headers: bytes | None,
        sid: int,
        cause: BaseException,
    ) -> None:
        self.subject = subject
        self.reply = reply
        self.payload = payload
        self.headers = headers
        self.sid = sid
        self.cause = cause
        part = "header block" if headers is not None else "subject"
        super().__init__(
            f"dropped a malformed message: its {part} cannot be read ({type(cause).__name__}: {cause}); "
            f"subject bytes {subject[:200]!r}, reply {reply[:200]!r}, {len(payload)} payload bytes"
            f"{'' if headers is None else f', headers {headers[:200]!r}'}. Delivery goes on; find the "
            f"client that publishes subjects or headers that are not UTF-8"
        )


class ReplyHandlerError(MessageError):
    """The service answering a request failed; the text is the error the replier reported.

    Args:
        subject, remote_error: As the attributes below.

    Attributes:
        subject: The request subject.
        remote_error: The error text the replying service sent back.
    """

    def __init__(self, subject: str, remote_error: str) -> None:
        self.subject = subject
        self.remote_error = remote_error
        super().__init__(f"the handler for request subject {subject!r} failed: {remote_error}")


class _PlainMessage(FastIoTError):
    """The base of errors whose second base prints something else than the message they were made with.

    nats-py's errors print a fixed text, a ``KeyError`` its message quoted.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else super().__str__()


class RequestTimeoutError(_PlainMessage, BrokerError, nats.errors.TimeoutError, TimeoutError):
    """No reply to a request arrived in time.

    A ``TimeoutError`` and a ``nats.errors.TimeoutError``, so code written for either still catches it.
    While any wildcard subscriber (e.g. a subject browser on ``>``) listens, NATS delivers the request
    to it and cannot answer "no responders", so a request nobody serves ends here too.

    Args:
        subject, timeout: As the attributes below.

    Attributes:
        subject: The request subject.
        timeout: The seconds waited.
    """

    def __init__(self, subject: str, timeout: float) -> None:
        self.subject = subject
        self.timeout = timeout
        super().__init__(
            f"no reply within {timeout} s on {subject!r} (if nobody serves it: NATS cannot report "
            f"'no responders' while a wildcard subscriber such as a subject browser on '>' listens)"
        )


class SyncCallOnLoopThreadError(BrokerError, RuntimeError):
    """A blocking call was made on the event loop's own thread, where it would deadlock."""


class NatsServerBinaryNotFound(BrokerError, FileNotFoundError):
    """The ``nats-server`` executable is not installed."""


class PublishBufferFullError(_PlainMessage, BrokerError, nats.errors.OutboundBufferLimitError):
    """A publish was refused: the connection is down and its reconnect buffer is full.

    While reconnecting, nats-py keeps publishes in a buffer of ``pending_size`` bytes (2 MiB by default)
    and sends them once connected again; what does not fit is refused with this error, never dropped
    silently. It is a ``nats.errors.OutboundBufferLimitError``, so code written for nats-py still catches it.

    Args:
        subject, size, buffer_size: As the attributes below.

    Attributes:
        subject: The subject of the refused message.
        size: Its payload size in bytes.
        buffer_size: The reconnect buffer's capacity in bytes.
    """

    def __init__(self, subject: str, size: int, buffer_size: int) -> None:
        self.subject = subject
        self.size = size
        self.buffer_size = buffer_size
        super().__init__(
            f"the message on subject {subject!r} ({size} bytes) was NOT sent: the connection to NATS is down "
            f"(reconnecting) and its reconnect buffer of {buffer_size} bytes is full. Wait until the "
            f"connection's state is 'connected' again (see on_state_change), publish less during outages, "
            f"or connect with a larger buffer: NatsBrokerConnection.connect(pending_size=...)"
        )


class PayloadTooLargeError(_PlainMessage, BrokerError, nats.errors.MaxPayloadError):
    """A message is larger than the server's ``max_payload``; it was not sent.

    A ``nats.errors.MaxPayloadError``, so code written for nats-py still catches it.

    Args:
        subject, size, max_payload: As the attributes below.

    Attributes:
        subject: The subject of the message.
        size: Its payload size in bytes.
        max_payload: The largest payload the server accepts, in bytes.
    """

    def __init__(self, subject: str, size: int, max_payload: int) -> None:
        self.subject = subject
        self.size = size
        self.max_payload = max_payload
        super().__init__(
            f"the message on subject {subject!r} is {size} bytes, more than the NATS server's max_payload "
            f"of {max_payload} bytes, and was NOT sent. Split it into smaller messages, send a reference "
            f"to the data instead (a file path or object-store key), or raise max_payload in the "
            f"nats-server configuration"
        )


class InvalidSubjectError(ConfigurationError, ValueError):
    """A subject or subject pattern NATS does not accept: an empty token, white space, a misplaced wildcard.

    Every API that takes a subject or pattern checks it with
    :func:`fastiot.core.subject_helper.check_subject` and raises this (never nats-py's ``BadSubjectError``).
    A ``ValueError``, so code that caught the ``ValueError`` of earlier versions still catches it.
    """


class SubjectTooLongError(InvalidSubjectError):
    """A subject is too long for a NATS protocol line; it was refused before reaching the server.

    nats-server closes a connection whose protocol line exceeds its ``max_control_line`` (4 KiB by
    default), and nats-py then closes the connection for good: one long subject would end every
    subscription on it. So fastiot refuses such subjects up front.
    """


class InvalidTopicError(InvalidSubjectError):
    """An MQTT topic or filter NATS cannot carry: empty, with white space, or with a misplaced ``+``/``#``.

    An :class:`InvalidSubjectError`, since every MQTT topic is a NATS subject underneath.
    """


class NatsServerStartError(BrokerError, RuntimeError):
    """The nats-server process did not come up; the message holds the end of its log."""


class MqttUnavailableError(BrokerError, ConnectionError):
    """No MQTT listener to publish through: none is known (``FASTIOT_MQTT_PORT``) or it does not answer.

    Raised by :mod:`fastiot.mqtt` where MQTT itself is needed (QoS 1, retained messages); the message
    says how to turn the listener on (``fastiot-workbench --mqtt``).
    """


class MqttAuthenticationError(MqttUnavailableError):
    """The MQTT listener refused the login (MQTT clients log in with the NATS broker's credentials)."""


class WaitTimeoutError(MessageError, TimeoutError):
    """``wait_for`` or ``sync`` did not see what it waited for in time."""


class NotRunningError(MessageError, RuntimeError):
    """The capture (or subject index) is not started, so what was waited for cannot happen."""


class ParquetUnavailableError(ConfigurationError, ImportError):
    """Parquet export needs pyarrow, which comes with the ``parquet`` extra."""


class ServiceStartError(ServiceLifecycleError, RuntimeError):
    """The service crashed while starting.

    The message names the error (e.g. ``ValueError: bad config``); ``traceback`` holds the whole text.

    Args:
        message: The error's text, naming the error the service raised.
        traceback_text: The whole traceback, kept in ``traceback``.
    """

    def __init__(self, message: str, traceback_text: str = "") -> None:
        super().__init__(message)
        self.traceback: str = traceback_text


class ServiceReplacedError(ServiceLifecycleError, RuntimeError):
    """The service runner was retired.

    A newer ``%%service`` cell defines the service, so this outdated definition cannot start again (it
    would run beside the new one).
    """


class FormError(ConfigurationError, ValueError):
    """Some form inputs cannot be turned into the model's field values.

    Args:
        errors: As the attribute below.

    Attributes:
        errors: The problem per field name.
    """

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in errors.items()))


class PathNotFoundError(_PlainMessage, MessageError, KeyError):
    """A field path (``"sensors.temp.value"``) names no field of the payload it is applied to.

    A ``KeyError``, so ``except KeyError`` catches it; its text, unlike a bare ``KeyError``'s, is not
    quoted.

    Args:
        path: The path that was looked up.
        message: The error's text.

    Attributes:
        path: The path that was looked up.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


class InvalidPathError(ConfigurationError, ValueError):
    """A field path is not written as :mod:`fastiot.payloads` paths are (``a.b``, ``a["key.with.dots"]``)."""


class DecoderRegistrationError(ConfigurationError, ValueError):
    """A payload decoder cannot be registered: no name, not callable or a bad subject pattern."""


class InvalidDecoderSubjectError(DecoderRegistrationError, InvalidSubjectError):
    """A payload decoder's subject pattern is not valid: the same mistake as :class:`InvalidSubjectError`."""


class MessageNotKeptError(MessageError, IndexError):
    """A subject index keeps only the newest ``history`` messages per subject; the one asked for is not."""


class GridFilterError(ConfigurationError, ValueError):
    """A data grid's column filter compares with a value that is not of the column's type."""


class MqttUrlError(ConfigurationError, ValueError):
    """An MQTT listener's address is not ``mqtt://[user:password@]HOST:PORT``."""


class TemplateFileError(ConfigurationError, ValueError):
    """A file of publisher templates cannot be read, is not valid, or would grow past its limits.

    Args:
        message: The error's text.
        path: The templates file.

    Attributes:
        path: The templates file.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path: str = path


class SubjectHierarchyError(ConfigurationError, RuntimeError):
    """A subject does not fit its model's ``_handles_hierarchical_subjects``.

    A ``RuntimeError``, as in FastIoT: a model without hierarchy got a ``*`` or ``>``, or one that expects a
    hierarchy (like ``Thing``) got no name.
    """


class CommandRegistrationError(ConfigurationError, ValueError):
    """A ``fastiot-workbench`` subcommand cannot be registered: a bad or taken name, or no function."""


class ServiceExportError(ConfigurationError, ValueError):
    """A service cannot be exported from its cell to a module, or no service is found in a module to run."""


class BackgroundProcessError(ServiceLifecycleError, RuntimeError):
    """``fastiot.testlib.BackgroundProcess`` could not start its service process, or it died starting."""


class ConfigFileNotFoundError(ConfigurationError, FileNotFoundError):
    """``FastIoTConfigModel.from_service`` found no YAML file for the service in ``FASTIOT_CONFIG_DIR``."""


# FastIoT 1.1 names, raised by no code of fastiot-workbench (they belong to FastIoT's database and CSV
# helpers); kept so that code written for FastIoT that raises or catches them still imports.


# FastIoT 1.1 names, raised by no code of fastiot-workbench (they belong to FastIoT's database and CSV
# helpers); kept so that code written for FastIoT that raises or catches them still imports.


class ServiceError(FastIoTError):
    """FastIoT 1.1's error for a failed connection to a service (e.g. a database)."""


class SQLSchemaCheckError(FastIoTError):
    """FastIoT 1.1's error for a database schema that does not match what is expected."""


class CSVError(FastIoTError):
    """FastIoT 1.1's error for a failed CSV import."""


class LivePlotError(ConfigurationError, ValueError):
    """A live plot was given no subjects, no fields, or a window or limit that cannot be plotted."""


# -- history: recordings (JetStream streams) and key-value buckets ---------------------------------------


class HistoryError(FastIoTError):
    """Base of the errors of :mod:`fastiot.history` (recordings, replays, key-value buckets)."""


class JetStreamUnavailableError(HistoryError, RuntimeError):
    """The NATS server has no JetStream, or its JetStream is not ready (a cluster without a leader yet)."""


class HistoryServerError(HistoryError):
    """The server refused a JetStream request; the message holds its reason and what to do.

    Args:
        message: The reason and what to do.
        err_code: JetStream's error code, if the server sent one.
        description: The server's own text.

    Attributes:
        err_code: JetStream's error code (e.g. 10074), if the server sent one.
        description: The server's own text.
    """

    def __init__(self, message: str, *, err_code: int | None = None, description: str | None = None) -> None:
        super().__init__(message)
        self.err_code = err_code
        self.description = description


class InvalidRecordingError(HistoryError, ValueError):
    """A recording's name, subjects or settings are not valid; refused before any call to the server."""


class InvalidRecordingSubjectError(InvalidRecordingError, InvalidSubjectError):
    """A recording's subject pattern is not valid: the same mistake as :class:`InvalidSubjectError`.

    Both an ``InvalidRecordingError`` (as recordings always raised) and an ``InvalidSubjectError`` (as
    every other API raises for the same pattern).
    """


class SubjectsOverlapError(HistoryError, ValueError):
    """Another stream records (some of) these subjects already; NATS lets only one stream store a subject.

    Args:
        message: The error's text.
        stream: The name of the stream that records them.
        subjects: The subjects asked for.

    Attributes:
        stream: The name of the stream that records them.
        subjects: The subjects asked for.
    """

    def __init__(self, message: str, *, stream: str, subjects: list[str]) -> None:
        super().__init__(message)
        self.stream = stream
        self.subjects = subjects


class RecordingExistsError(HistoryError, ValueError):
    """A recording of this name exists with another configuration (or is stopped); it was left as it is."""


class RecordingNotFoundError(HistoryError, LookupError):
    """There is no recording (JetStream stream) of this name on the server.

    Args:
        message: The error's text.
        name: The recording's name.

    Attributes:
        name: The recording's name.
    """

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class RecordingDeletedError(RecordingNotFoundError):
    """The recording was deleted while it was being read, replayed or shown."""


class InvalidRangeError(HistoryError, ValueError):
    """``start`` / ``end`` is not a datetime, a timedelta back from now or a stream sequence number."""


class ReplayLoopError(HistoryError, ValueError):
    """A replay would publish into the subjects its recording records, on the same broker: a loop.

    Nothing was published. Give ``subject_prefix=`` or a ``connection=`` to another broker.
    """


class HistoryReadError(HistoryError, RuntimeError):
    """The server stopped delivering the messages of a range (the read was retried and gave up)."""


class BucketNotFoundError(HistoryError, LookupError):
    """There is no key-value bucket of this name on the server."""
