"""Services that fail on purpose, shared by the ServiceRunner and ServiceControl tests."""

from __future__ import annotations

from fastiot.core import FastIoTService, loop


class CrashingLoop(FastIoTService):
    """Starts, then its loop raises: the service shuts down with the error recorded."""

    @loop
    async def explode(self):
        raise RuntimeError("sensor unplugged")


class CrashingStart(FastIoTService):
    """Raises while starting."""

    async def _start(self) -> None:
        raise ValueError("bad configuration")
