"""Requests for historic data (time series or object storage), with FastIoT's message names.

A service that stores data answers :class:`HistObjectReq` on ``v1.hist_object_req.<data type>`` with a
:class:`HistObjectResp`.

Example:
    >>> from fastiot.msg.hist import HistObjectReq
    >>> request = HistObjectReq(subject_name="v1.thing", machine="press_1", limit=10)
    >>> request.get_reply_subject("thing").name
    'v1.hist_object_req.thing'
"""

from __future__ import annotations

from datetime import datetime

from fastiot.core.data_models import FastIoTRequest, FastIoTResponse

__all__ = ["HistObjectReq", "HistObjectResp"]


class HistObjectResp(FastIoTResponse):
    """The answer to a :class:`HistObjectReq`: the stored objects found, or an error."""

    error_code: int = 0
    """0 if the query worked, else the storing service's error number."""
    error_msg: str = ""
    """What went wrong, if anything."""
    values: list[dict]
    """The objects found, as dicts."""


class HistObjectReq(FastIoTRequest):
    """A query for stored data of one data type; every criterion is optional (``None``: no limit).

    Send it on ``HistObjectReq.get_reply_subject("<data type>")``, e.g. ``v1.hist_object_req.thing``.
    """

    _reply_cls = HistObjectResp

    dt_start: datetime | None = None
    """Only objects from this time on."""
    dt_end: datetime | None = None
    """Only objects up to this time."""
    limit: int | None = 100
    """At most this many objects."""
    subject_name: str | None = None
    """Only objects that were published on this subject, e.g. ``v1.thing`` (not the request's subject)."""
    machine: str | None = None
    """Only values of this machine."""
    sensor: str | None = None
    """Only values of this sensor."""
    raw_query: dict | str | None = None
    """A query in the storing service's own terms, added to the criteria above (each service reads it its
    own way, e.g. a MongoDB filter)."""
