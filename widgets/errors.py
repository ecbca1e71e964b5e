"""Errors only a widget raises. Each derives from :class:`fastiot.exceptions.FastIoTError`, so
``except FastIoTError`` catches them with the rest; the headless layers' errors are in
:mod:`fastiot.exceptions`.

::

    FastIoTError
    └── WidgetError                  raised by a view or a magic, never by the headless layers
        ├── CodeGenerationError      (ValueError) an action has no Python code to copy
        └── ServiceCellError         a ``%%service`` cell defines no (such) service

Example:
    >>> from fastiot.exceptions import FastIoTError
    >>> from fastiot_widgets.errors import CodeGenerationError
    >>> issubclass(CodeGenerationError, FastIoTError)
    True
"""

from __future__ import annotations

from fastiot.exceptions import FastIoTError

__all__ = ["CodeGenerationError", "ServiceCellError", "WidgetError"]


class WidgetError(FastIoTError):
    """Base of the errors only :mod:`fastiot_widgets` raises."""


class CodeGenerationError(WidgetError, ValueError):
    """An action cannot be written as Python code ("copy as code"), e.g. a payload value without a literal."""


class ServiceCellError(WidgetError):
    """A ``%%service`` cell defines no service (or not the one named); the cell fails, so Run All stops."""
