"""Exception types of fastiot. Each says what went wrong and what to do next."""

from __future__ import annotations

__all__ = [
    "BrokerAuthenticationError",
    "BrokerUnavailableError",
    "DeserializationError",
    "FastIoTError",
    "MessageHandlingError",
    "NatsServerBinaryNotFound",
    "ReplyHandlerError",
    "ShutdownRequestedInterruption",
    "SyncCallOnLoopThreadError",
]


class FastIoTError(Exception):
    """Base class of every error fastiot raises on purpose."""


class ShutdownRequestedInterruption(FastIoTError):
    """Raised by :meth:`FastIoTService.run_coro` when the service is asked to shut down."""

    def __init__(self, message: str = "The service is shutting down") -> None:
        super().__init__(message)


class BrokerUnavailableError(FastIoTError, ConnectionError):
    """No NATS server accepted the connection at the configured URLs."""


class BrokerAuthenticationError(BrokerUnavailableError):
    """The NATS server rejected the credentials (user/password, token, creds file or TLS)."""


class DeserializationError(FastIoTError, ValueError):
    """A payload is not valid msgpack (or not what the subject's model expects)."""


class MessageHandlingError(FastIoTError):
    """A message on a subject could not be decoded, validated or handled.

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


class ReplyHandlerError(FastIoTError):
    """The service answering a request failed; the text is the error the replier reported.

    Attributes:
        subject: The request subject.
        remote_error: The error text the replying service sent back.
    """

    def __init__(self, subject: str, remote_error: str) -> None:
        self.subject = subject
        self.remote_error = remote_error
        super().__init__(f"the handler for request subject {subject!r} failed: {remote_error}")


class SyncCallOnLoopThreadError(FastIoTError, RuntimeError):
    """A blocking call was made on the event loop's own thread, where it would deadlock."""


class NatsServerBinaryNotFound(FastIoTError, FileNotFoundError):
    """The ``nats-server`` executable is not installed."""
