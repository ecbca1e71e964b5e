"""AsyncAPI documents of services: valid against the official AsyncAPI 3.0 schema, and readable."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from fastiot.cli import main as cli_main
from fastiot.core import FastIoTPublish, FastIoTRequest, FastIoTResponse, FastIoTService, reply, subscribe
from fastiot.demo import MachineSimulator, Oven, PlantStatusService, Press
from fastiot.exceptions import ServiceExportError
from fastiot.msg.thing import Thing
from fastiot.services import asyncapi

SPECS = Path(__file__).resolve().parents[2] / ".ci" / "node" / "node_modules" / "@asyncapi" / "specs"
NPM_LINE = "npm install --prefix .ci/node @asyncapi/specs"


def asyncapi_validator() -> jsonschema.Draft7Validator:
    """The official AsyncAPI 3.0.0 schema of the npm package, its $refs resolved from the package's files."""
    bundle = SPECS / "schemas" / "3.0.0.json"
    if not bundle.is_file():
        # A platform limit, as for the browser and Mosquitto tests: skipped with this reason, except under CI.
        reason = f"the AsyncAPI JSON schema (npm @asyncapi/specs) is not installed at {bundle}: {NPM_LINE}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = json.loads(bundle.read_text())
    # The bundle holds every schema it refers to (draft-07 itself included) under definitions, by $id.
    resources = [
        (uri, Resource.from_contents(schema, default_specification=DRAFT7))
        for uri, schema in root["definitions"].items()
    ]
    registry = (
        Registry()
        .with_resources(resources)
        .with_resource(root["$id"], Resource.from_contents(root, default_specification=DRAFT7))
    )
    return jsonschema.Draft7Validator(root, registry=registry)


def assert_valid(document: dict[str, Any]) -> None:
    errors = sorted(asyncapi_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


class Position(BaseModel):
    x: float
    y: float
    label: str | None = None


class Batch(FastIoTPublish):
    """A batch of parts on the line."""

    parts: list[str]
    positions: list[Position]
    origin: Position
    rework: Position | None = None
    weights: dict[str, float] = {}
    produced_at: datetime | None = None


class BatchSummary(FastIoTResponse):
    count: int
    last: Batch | None = None


class BatchQuery(FastIoTRequest):
    line: str | None = None
    _reply_cls = BatchSummary


class BatchAlarm(FastIoTPublish):
    batch: Batch
    reasons: list[str]


class LineService(FastIoTService):
    """Keeps the batches of every line."""

    publishes = (BatchAlarm.get_subject(),)

    @subscribe(subject=Batch.get_subject())
    async def on_batch(self, batch: Batch) -> None:
        """Keep a batch."""

    @subscribe(subject=Thing.get_subject("*.temperature"))
    async def on_temperature(self, subject_name: str, thing: Thing) -> None:
        pass

    @reply(subject=BatchQuery.get_reply_subject())
    async def summary(self, request: BatchQuery) -> BatchSummary:
        return BatchSummary(count=0)


def test_the_demo_plants_document_is_valid_asyncapi_3() -> None:
    doc = asyncapi(
        PlantStatusService, Press, Oven, title="Demo plant", servers={"plant": "nats://localhost:4222"}
    )
    assert_valid(doc.to_dict())
    operations = doc.to_dict()["operations"]
    assert operations["PlantStatusService.plant_status"]["action"] == "receive"
    assert "reply" in operations["PlantStatusService.plant_status"]
    sends = [op for op in operations.values() if op["action"] == "send"]
    assert sends and all(op["channel"]["$ref"] == "#/channels/v1_thing_any_any" for op in sends)


def test_nested_models_lists_and_optional_fields_are_valid_and_shared_in_components() -> None:
    doc = asyncapi(LineService, title="Line").to_dict()
    assert_valid(doc)
    schemas = doc["components"]["schemas"]
    assert {"Batch", "Position", "BatchSummary", "BatchQuery", "BatchAlarm", "Thing"} <= set(schemas)
    assert schemas["Batch"]["properties"]["origin"] == {"$ref": "#/components/schemas/Position"}
    messages = doc["components"]["messages"]
    assert all(m["contentType"] == "application/msgpack" for m in messages.values())
    # Every example is a valid message of its model.
    Batch.model_validate(messages["Batch"]["examples"][0]["payload"])
    BatchAlarm.model_validate(messages["BatchAlarm"]["examples"][0]["payload"])


def test_operations_say_receive_reply_and_send_and_wildcards_become_parameters() -> None:
    doc = asyncapi(LineService).to_dict()
    ops = doc["operations"]
    assert ops["LineService.on_batch"]["action"] == "receive"
    assert "reply" not in ops["LineService.on_batch"]
    assert ops["LineService.summary"]["reply"]["messages"] == [
        {"$ref": "#/channels/v1_batch_query_reply/messages/BatchSummary"}
    ]
    send = [op for op in ops.values() if op["action"] == "send"]
    assert [op["channel"]["$ref"] for op in send] == ["#/channels/v1_batch_alarm"]
    channel = doc["channels"]["v1_thing_any_temperature"]
    assert channel["address"] == "v1.thing.{token3}.temperature"
    assert set(channel["parameters"]) == {"token3"}


def test_the_catalogue_shows_channels_fields_and_examples_not_json() -> None:
    text = asyncapi(LineService, title="Line")._repr_markdown_()
    assert "### `v1.batch`" in text
    assert "**LineService.summary** receives `BatchQuery`, replies `BatchSummary`" in text
    assert "| `rework` | Position | null |  |" in text
    assert '"asyncapi"' not in text


def test_a_non_service_is_refused() -> None:
    with pytest.raises(ServiceExportError, match="FastIoTService subclasses"):
        asyncapi(MachineSimulator(machine="m"))  # type: ignore[arg-type]


def test_the_command_prints_json_or_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["asyncapi", "fastiot.demo:PlantStatusService", "--title", "Plant"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["info"]["title"] == "Plant"
    assert_valid(doc)
    assert cli_main(["asyncapi", "fastiot.demo", "--yaml"]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert_valid(doc)
    assert "PlantStatusService.plant_status" in doc["operations"]


def test_the_command_reads_a_service_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "line_service.py").write_text(
        "from fastiot.core import FastIoTService, ReplySubject, reply\n\n"
        "class FileService(FastIoTService):\n"
        "    @reply(subject=ReplySubject(name='v1.file_service', msg_cls=dict, reply_cls=dict))\n"
        "    async def answer(self, request: dict) -> dict:\n"
        "        return request\n"
    )
    assert (
        cli_main(["asyncapi", f"{tmp_path / 'line_service.py'}:FileService", "--server", "nats://plant:4222"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert_valid(doc)
    assert doc["servers"] == {"server1": {"host": "plant:4222", "protocol": "nats"}}
    assert doc["components"]["messages"]["AnyMessage"]["contentType"] == "application/msgpack"
    assert cli_main(["asyncapi", f"{tmp_path / 'line_service.py'}:Nope"]) == 2
    assert "has no service class 'Nope' (its services: FileService)" in capsys.readouterr().err
