"""FastIoT services seen from outside.

Discovery through NATS' services API, AsyncAPI documents, and export from a notebook cell to a module.

Example:
    >>> from fastiot.demo import PlantStatusService
    >>> from fastiot.services import asyncapi, discover
    >>> asyncapi(PlantStatusService).to_dict()["asyncapi"]
    '3.0.0'
    >>> [s.name for s in await discover(timeout=0.5)]  # doctest: +SKIP
    ['Doubler', 'Printer']
"""

from __future__ import annotations

from fastiot.services.asyncapi import AsyncAPIDocument, asyncapi
from fastiot.services.directory import ServiceDirectory
from fastiot.services.discovery import (
    DEFAULT_DISCOVER_TIMEOUT,
    DiscoveredService,
    Endpoint,
    discover,
    stats,
    which_services,
)
from fastiot.services.examples import example_message, example_payload
from fastiot.services.export import ExportedService, export_service

__all__ = [
    "DEFAULT_DISCOVER_TIMEOUT",
    "AsyncAPIDocument",
    "DiscoveredService",
    "Endpoint",
    "ExportedService",
    "ServiceDirectory",
    "asyncapi",
    "discover",
    "example_message",
    "example_payload",
    "export_service",
    "stats",
    "which_services",
]
