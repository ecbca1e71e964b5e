"""A free TCP port, as FastIoT's ``fastiot.util.ports`` finds one.

Example:
    >>> from fastiot.util.ports import get_local_random_port
    >>> 0 < get_local_random_port() < 65536
    True
"""

from __future__ import annotations

from fastiot.nats_server import find_free_port

__all__ = ["get_local_random_port"]


def get_local_random_port() -> int:
    """A TCP port that is free on every interface right now, chosen by the operating system.

    Another process may take it before you bind it; bind it soon.
    """
    # "" (every interface), as FastIoT binds: a service may listen on 0.0.0.0, not only on loopback.
    return find_free_port("")
