"""Services on the broker: discovery through NATS' services API.

Example:
    >>> from fastiot.services import discover
    >>> [s.name for s in await discover(timeout=0.5)]  # doctest: +SKIP
    ['Doubler', 'Printer']
"""

from __future__ import annotations

from fastiot.services.directory import ServiceDirectory
from fastiot.services.discovery import (
    DEFAULT_DISCOVER_TIMEOUT,
    DiscoveredService,
    Endpoint,
    discover,
    stats,
    which_services,
)

__all__ = [
    "DEFAULT_DISCOVER_TIMEOUT",
    "DiscoveredService",
    "Endpoint",
    "ServiceDirectory",
    "discover",
    "stats",
    "which_services",
]
