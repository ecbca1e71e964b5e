"""The errors' family tree: what ``except`` clauses written against it can rely on.

Every error fastiot exports is a FastIoTError under one of a few groups (connection, messages,
services, bad input, history), keeps the standard or nats-py base that older code catches it by, and is
drawn in the module's docstring. Widget-only errors live in fastiot_widgets, derived from FastIoTError.
"""

from __future__ import annotations

import inspect

import nats.errors
import pytest

from fastiot import exceptions
from fastiot.exceptions import (
    BrokerError,
    ConfigurationError,
    FastIoTError,
    HistoryError,
    MessageError,
    ServiceLifecycleError,
)

GROUPS: tuple[type[FastIoTError], ...] = (
    BrokerError,
    MessageError,
    ServiceLifecycleError,
    ConfigurationError,
    HistoryError,
)
# FastIoT 1.1's names, raised by no fastiot code: directly under FastIoTError.
LEGACY = {"ServiceError", "SQLSchemaCheckError", "CSVError"}
# Errors that are two things at once on purpose: a recording's bad subject pattern is both what
# recordings always raised (history) and what every other API raises for the same pattern (bad input).
BRIDGES = {"InvalidRecordingSubjectError": (HistoryError, ConfigurationError)}

# Where each error sits, and the base older code catches it by.
PLACES: dict[str, tuple[type[FastIoTError], tuple[type[BaseException], ...]]] = {
    "BrokerUnavailableError": (BrokerError, (ConnectionError,)),
    "BrokerAuthenticationError": (BrokerError, (ConnectionError,)),
    "RequestTimeoutError": (BrokerError, (TimeoutError, nats.errors.TimeoutError)),
    "PublishBufferFullError": (BrokerError, (nats.errors.OutboundBufferLimitError,)),
    "PayloadTooLargeError": (BrokerError, (nats.errors.MaxPayloadError,)),
    "SyncCallOnLoopThreadError": (BrokerError, (RuntimeError,)),
    "NatsServerBinaryNotFound": (BrokerError, (FileNotFoundError,)),
    "NatsServerStartError": (BrokerError, (RuntimeError,)),
    "PermissionDeniedError": (BrokerError, (PermissionError,)),
    "MqttUnavailableError": (BrokerError, (ConnectionError,)),
    "MqttAuthenticationError": (BrokerError, (ConnectionError,)),
    "InvalidTopicError": (ConfigurationError, (ValueError,)),
    "DeserializationError": (MessageError, (ValueError,)),
    "BadMessageError": (MessageError, (ValueError,)),
    "MessageHandlingError": (MessageError, ()),
    "ReplyHandlerError": (MessageError, ()),
    "PathNotFoundError": (MessageError, (KeyError,)),
    "MessageNotKeptError": (MessageError, (IndexError,)),
    "WaitTimeoutError": (MessageError, (TimeoutError,)),
    "NotRunningError": (MessageError, (RuntimeError,)),
    "ShutdownRequestedInterruption": (ServiceLifecycleError, ()),
    "ServiceStartError": (ServiceLifecycleError, (RuntimeError,)),
    "ServiceReplacedError": (ServiceLifecycleError, (RuntimeError,)),
    "BackgroundProcessError": (ServiceLifecycleError, (RuntimeError,)),
    "SettingsError": (ConfigurationError, (ValueError,)),
    "SubjectTooLongError": (ConfigurationError, (ValueError,)),
    "InvalidSubjectError": (ConfigurationError, (ValueError,)),
    "InvalidDecoderSubjectError": (ConfigurationError, (ValueError,)),
    "ConfigFileNotFoundError": (ConfigurationError, (FileNotFoundError,)),
    "SubjectHierarchyError": (ConfigurationError, (RuntimeError,)),
    "InvalidPathError": (ConfigurationError, (ValueError,)),
    "DecoderRegistrationError": (ConfigurationError, (ValueError,)),
    "ParquetUnavailableError": (ConfigurationError, (ImportError,)),
    "FormError": (ConfigurationError, (ValueError,)),
    "TemplateFileError": (ConfigurationError, (ValueError,)),
    "LivePlotError": (ConfigurationError, (ValueError,)),
    "GridFilterError": (ConfigurationError, (ValueError,)),
    "MqttUrlError": (ConfigurationError, (ValueError,)),
    "CommandRegistrationError": (ConfigurationError, (ValueError,)),
    "ServiceExportError": (ConfigurationError, (ValueError,)),
    "JetStreamUnavailableError": (HistoryError, (RuntimeError,)),
    "HistoryServerError": (HistoryError, ()),
    "InvalidRecordingError": (HistoryError, (ValueError,)),
    "InvalidRecordingSubjectError": (HistoryError, (ValueError,)),
    "SubjectsOverlapError": (HistoryError, (ValueError,)),
    "RecordingExistsError": (HistoryError, (ValueError,)),
    "RecordingNotFoundError": (HistoryError, (LookupError,)),
    "RecordingDeletedError": (HistoryError, (LookupError,)),
    "InvalidRangeError": (HistoryError, (ValueError,)),
    "ReplayLoopError": (HistoryError, (ValueError,)),
    "HistoryReadError": (HistoryError, (RuntimeError,)),
    "BucketNotFoundError": (HistoryError, (LookupError,)),
}


def _exported() -> dict[str, type[BaseException]]:
    return {name: getattr(exceptions, name) for name in exceptions.__all__}


def test_everything_exported_is_a_fastiot_error_under_exactly_one_group() -> None:
    for name, cls in _exported().items():
        assert inspect.isclass(cls) and issubclass(cls, FastIoTError), name
        if cls is FastIoTError or cls in GROUPS or name in LEGACY:
            continue
        groups = [group for group in GROUPS if issubclass(cls, group)]
        if name in BRIDGES:
            assert set(groups) == set(BRIDGES[name]), name
            continue
        assert len(groups) == 1, f"{name} must sit under one of {[g.__name__ for g in GROUPS]}, not {groups}"


@pytest.mark.parametrize("name", sorted(PLACES))
def test_each_error_keeps_its_group_and_the_base_older_code_catches(name: str) -> None:
    group, bases = PLACES[name]
    cls = _exported()[name]
    assert issubclass(cls, group)
    for base in bases:
        assert issubclass(cls, base), f"except {base.__name__} no longer catches {name}"


def test_the_docstring_draws_every_exported_error() -> None:
    drawn = exceptions.__doc__ or ""
    missing = [name for name in _exported() if name not in drawn]
    assert not missing, f"add {missing} to the tree in fastiot/exceptions.py's docstring"


def test_widget_only_errors_live_with_the_widgets_and_are_fastiot_errors() -> None:
    from fastiot_widgets import CodeGenerationError, ServiceCellError, WidgetError

    for cls in (CodeGenerationError, ServiceCellError):
        assert issubclass(cls, WidgetError) and issubclass(cls, FastIoTError)
        assert not hasattr(exceptions, cls.__name__), "the headless layers never raise it"
    assert issubclass(CodeGenerationError, ValueError)


def test_a_plain_message_error_prints_its_message_not_its_base_class_text() -> None:
    err = exceptions.PathNotFoundError("a.b", "no field 'b' in a")
    assert str(err) == "no field 'b' in a" and isinstance(err, KeyError) and isinstance(err, MessageError)
