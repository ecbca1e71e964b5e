"""Capturing NATS messages into pandas: MessageCapture and the parts it is built of.

- :mod:`~fastiot.capture.observer`: :class:`BrokerObserver`, the base of captures and subject
  indexes (subscriptions, throttled listeners, waiters, lost-message accounting), and
  :class:`Message`, what its handlers read of each message;
- :mod:`~fastiot.capture.columns` and :mod:`~fastiot.capture.buffer`: :class:`ColumnarBuffer`, decoded
  rows as numpy columns in a ring bounded in rows and bytes;
- :mod:`~fastiot.capture.export`: column arrays to pandas, frames to CSV and Parquet;
- :mod:`~fastiot.capture.message_capture`: :class:`MessageCapture` itself;
- :mod:`~fastiot.capture.grid_rows`: what a data grid shows of a capture or a DataFrame (row sources,
  the column filter language, sorting, cell text), imported from there (it needs pandas).

Payloads are decoded by :mod:`fastiot.payloads`, rates computed by :mod:`fastiot.rates`.

Example:
    >>> from fastiot.capture import MessageCapture
    >>> MessageCapture("v1.thing.>", max_rows=10_000).to_dataframe().columns.tolist()
    ['received_at', 'subject']
"""

from __future__ import annotations

from fastiot.capture._delivery import Message
from fastiot.capture.buffer import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_COLUMNS,
    ERROR_COLUMN,
    HEADERS_COLUMN,
    RAW_COLUMN,
    SEQUENCE_COLUMN,
    VALUE_COLUMN,
    ColumnarBuffer,
)
from fastiot.capture.export import string_array
from fastiot.capture.message_capture import (
    DEFAULT_MAX_ROWS,
    CaptureSubjects,
    MessageCallback,
    MessageCapture,
    decode_payload,
    flatten_payload,
)
from fastiot.capture.observer import DEFAULT_WAIT_TIMEOUT, BrokerObserver, Listener, MessageHandler
from fastiot.exceptions import NotRunningError, ParquetUnavailableError, WaitTimeoutError
from fastiot.rates import DEFAULT_RATE_WINDOW

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_COLUMNS",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_RATE_WINDOW",
    "DEFAULT_WAIT_TIMEOUT",
    "ERROR_COLUMN",
    "HEADERS_COLUMN",
    "RAW_COLUMN",
    "SEQUENCE_COLUMN",
    "VALUE_COLUMN",
    "BrokerObserver",
    "CaptureSubjects",
    "ColumnarBuffer",
    "Listener",
    "Message",
    "MessageCallback",
    "MessageCapture",
    "MessageHandler",
    "NotRunningError",
    "ParquetUnavailableError",
    "WaitTimeoutError",
    "decode_payload",
    "flatten_payload",
    "string_array",
]
