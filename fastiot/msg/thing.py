"""Thing: the default model of one sensor value.

Example:
    >>> from fastiot.msg.thing import Thing
    >>> thing = Thing(machine="press_1", name="temperature", value=71.3, unit="degC")
    >>> Thing.get_subject("press_1.temperature").name
    'v1.thing.press_1.temperature'
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from fastiot.core.core_uuid import get_uuid
from fastiot.core.data_models import FastIoTPublish, Subject
from fastiot.core.time import get_time_now

__all__ = ["Thing"]

# One measurement id per process, so values of one run of a service can be told apart from the next.
_PROCESS_MEASUREMENT_ID = get_uuid()


class Thing(FastIoTPublish):
    """One value of one sensor of one machine, published on ``v1.thing.<name>``."""

    machine: str
    """The machine the sensor belongs to, e.g. ``press_1``."""
    name: str
    """The sensor's name, e.g. ``temperature``."""
    measurement_id: str = Field(default=_PROCESS_MEASUREMENT_ID)
    """Identifies one measurement run; one UUID per process by default."""
    value: Any
    """The value: a number, string, bool, list or dict."""
    timestamp: datetime = Field(default_factory=get_time_now)
    """When the value was measured, in UTC (naive datetimes are taken as UTC)."""
    unit: str = ""
    """The unit of the value, e.g. ``degC``."""

    @classmethod
    def get_subject(cls, name: str = "") -> Subject:
        """The subject of a sensor: ``Thing.get_subject("press_1.temperature")``; ``">"`` for all.

        Raises:
            ValueError: If no name is given; Things always publish below ``v1.thing``.
        """
        if not name:
            raise ValueError(
                "Thing subjects are hierarchical: give a name, "
                "e.g. Thing.get_subject('press_1.temperature'), "
                "or Thing.get_subject('>') to subscribe to all of them"
            )
        return super().get_subject(name)
