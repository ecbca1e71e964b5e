"""Ready-made message models."""

from __future__ import annotations

from fastiot.msg.hist import HistObjectReq, HistObjectResp
from fastiot.msg.thing import Thing
from fastiot.msg.time_series_msg import TimeSeriesData

__all__ = ["HistObjectReq", "HistObjectResp", "Thing", "TimeSeriesData"]
