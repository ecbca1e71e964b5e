"""FastIoT's message models beside Thing: TimeSeriesData and the historic-data request/response."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from fastiot.core import FastIoTService, reply
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import serialize_from_bin, serialize_to_bin
from fastiot.msg import HistObjectReq, HistObjectResp, TimeSeriesData
from fastiot.msg.thing import Thing

WAIT = 5.0


def _series() -> TimeSeriesData:
    return TimeSeriesData(
        id="12345",
        name="machine1.sensor1",
        service_id="12345",
        measurement_id="12345",
        dt_start=datetime(2022, 9, 1, second=1),
        dt_end=datetime(2022, 9, 1, second=3),
        modified_at=datetime(2022, 9, 1, second=3),
        values=[10, 11, 12],
    )


def test_time_series_data_to_and_from_dict() -> None:
    series = _series()
    as_dict = series.to_dict()
    assert as_dict["values"] == [10, 11, 12]
    assert as_dict["dt_start"] == datetime(2022, 9, 1, second=1, tzinfo=timezone.utc)  # naive taken as UTC
    assert TimeSeriesData.from_dict(as_dict) == series


def test_time_series_data_from_dict_names_a_missing_field() -> None:
    as_dict = _series().to_dict()
    del as_dict["dt_end"]
    with pytest.raises(ValidationError, match="dt_end"):
        TimeSeriesData.from_dict(as_dict)


def test_time_series_data_travels_as_msgpack() -> None:
    series = _series()
    assert serialize_from_bin(TimeSeriesData, serialize_to_bin(TimeSeriesData, series)) == series


def test_hist_object_req_criteria_are_optional_as_in_fastiot() -> None:
    request = HistObjectReq()
    assert request.limit == 100
    assert [request.dt_start, request.dt_end, request.subject_name, request.machine, request.sensor] == [
        None
    ] * 5
    assert request.raw_query is None
    assert HistObjectReq(raw_query="SELECT 1").raw_query == "SELECT 1"
    assert HistObjectResp(values=[]).error_code == 0 and HistObjectResp(values=[]).error_msg == ""


def test_hist_object_req_reply_subject() -> None:
    subject = HistObjectReq.get_reply_subject("my_data_type")
    assert subject.name == "v1.hist_object_req.my_data_type"
    assert subject.msg_cls is HistObjectReq and subject.reply_cls is HistObjectResp


class Archive(FastIoTService):
    """Answers queries for stored Things, as FastIoT's object storage service does."""

    stored = (
        Thing(machine="press_1", name="temperature", value=71.3, timestamp=datetime(2024, 5, 1, 12)),
        Thing(machine="press_2", name="temperature", value=64.0, timestamp=datetime(2024, 5, 1, 12)),
    )

    @reply(subject=HistObjectReq.get_reply_subject("thing"))
    async def query(self, request: HistObjectReq) -> HistObjectResp:
        found = [t.model_dump(mode="json") for t in self.stored if request.machine in (None, t.machine)]
        return HistObjectResp(values=found[: request.limit])


async def test_hist_request_and_reply_between_services(broker: NatsBrokerConnection) -> None:
    service_connection = await NatsBrokerConnection.connect()
    try:
        async with Archive(broker_connection=service_connection):
            await service_connection.flush()
            response = await asyncio.wait_for(
                broker.request(
                    HistObjectReq.get_reply_subject("thing"),
                    HistObjectReq(subject_name=Thing.get_subject(">").name, machine="press_2"),
                    timeout=WAIT,
                ),
                WAIT,
            )
    finally:
        await service_connection.close()
    assert isinstance(response, HistObjectResp)
    assert response.error_code == 0
    assert [Thing.model_validate(v).value for v in response.values] == [64.0]
