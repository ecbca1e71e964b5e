"""TimeSeriesData: a stretch of one sensor's values, as FastIoT's time series services store them.

Example:
    >>> from datetime import datetime
    >>> from fastiot.msg.time_series_msg import TimeSeriesData
    >>> data = TimeSeriesData(
    ...     id="1", name="press_1.temperature", service_id="", measurement_id="run_7",
    ...     dt_start=datetime(2024, 5, 1, 12), dt_end=datetime(2024, 5, 1, 13),
    ...     modified_at=datetime(2024, 5, 1, 13), values=[71.3, 71.9],
    ... )
    >>> TimeSeriesData.from_dict(data.to_dict()) == data
    True
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastiot.core.data_models import FastIoTData

__all__ = ["TimeSeriesData"]


class TimeSeriesData(FastIoTData):
    """Values of one series between two points in time (FastIoT's model, same fields).

    Its datetimes are UTC like those of every :class:`~fastiot.core.data_models.FastIoTData`.
    """

    id: str
    """Identifies the stored series."""
    name: str
    """The series' name, e.g. ``machine1.sensor1``."""
    service_id: str
    """The instance of the service that recorded it (``FASTIOT_SERVICE_ID``)."""
    measurement_id: str
    """The measurement run, as in :attr:`fastiot.msg.thing.Thing.measurement_id`."""
    dt_start: datetime
    """The first point in time covered."""
    dt_end: datetime
    """The last point in time covered."""
    modified_at: datetime
    """When the series was last changed."""
    values: Any
    """The values, in whatever form the storing service keeps them (usually a list)."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (datetimes stay datetimes); :meth:`from_dict` reverses it."""
        return self.model_dump()

    @classmethod
    def from_dict(cls, timeseries_dict: dict[str, Any]) -> TimeSeriesData:
        """Build one from a dict like :meth:`to_dict` returns.

        Raises:
            pydantic.ValidationError: A field is missing or has a value that does not fit.
        """
        return cls.model_validate(timeseries_dict)
