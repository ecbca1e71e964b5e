"""Thing: the default model of one sensor value.

Example:
    >>> from fastiot.msg.thing import Thing
    >>> thing = Thing(machine="press_1", name="temperature", value=71.3, unit="degC")
    >>> thing.default_subject.name
    'v1.thing.press_1.temperature'
    >>> Thing.get_subject(">").name  # every Thing
    'v1.thing.>'
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from fastiot.core.core_uuid import get_uuid
from fastiot.core.data_models import FastIoTPublish, Subject
from fastiot.core.time import get_time_now

__all__ = ["MEASUREMENT_ID", "Thing"]

MEASUREMENT_ID = get_uuid()
"""The default ``measurement_id``: one UUID per process, so one run of a service can be told from the next."""


class Thing(FastIoTPublish):
    """One value of one sensor of one machine, published on ``v1.thing.<machine>.<name>``.

    Thing subjects are hierarchical: ``Thing.get_subject()`` without a name raises
    :class:`~fastiot.exceptions.SubjectHierarchyError` (a ``RuntimeError``); subscribe to all with ``">"``.
    """

    _handles_hierarchical_subjects = True

    machine: str
    """The machine the sensor belongs to, e.g. ``press_1``."""
    name: str
    """The sensor's name, e.g. ``temperature``."""
    measurement_id: str = Field(default=MEASUREMENT_ID)
    """Identifies one measurement run; one UUID per process by default."""
    value: Any
    """The value: a number, string, bool, list or dict."""
    timestamp: datetime = Field(default_factory=get_time_now)
    """When the value was measured, in UTC (naive datetimes are taken as UTC)."""
    unit: str = ""
    """The unit of the value, e.g. ``degC``."""

    @property
    def default_subject(self) -> Subject:
        """The subject to publish this value on: ``v1.thing.<machine>.<name>``, spaces removed.

        Example:
            >>> Thing(machine="press 1", name="oil temp", value=40.0).default_subject.name
            'v1.thing.press1.oiltemp'
        """
        return self.get_subject(f"{self.machine}.{self.name}")
