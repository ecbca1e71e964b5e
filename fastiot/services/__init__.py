"""FastIoT services seen from outside: their AsyncAPI documents, and export from a notebook cell to a module.

Example:
    >>> from fastiot.demo import PlantStatusService
    >>> from fastiot.services import asyncapi
    >>> asyncapi(PlantStatusService).to_dict()["asyncapi"]
    '3.0.0'
"""

from __future__ import annotations

from fastiot.services.asyncapi import AsyncAPIDocument, asyncapi
from fastiot.services.examples import example_message, example_payload
from fastiot.services.export import ExportedService, export_service

__all__ = [
    "AsyncAPIDocument",
    "ExportedService",
    "asyncapi",
    "example_message",
    "example_payload",
    "export_service",
]
