"""A %%service cell answers NATS' services API; a re-run cell's old instance stops answering."""

from __future__ import annotations

import asyncio
import json

import nbformat
from nats.micro.service import ServiceInfo, ServiceStats

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.nats_server import NatsServer
from fastiot.services import discover
from tests.kernel_util import Kernel

MODELS = """
from fastiot import workbench
from fastiot.core import FastIoTRequest, FastIoTResponse, FastIoTService, reply

class Shouted(FastIoTResponse):
    text: str

class ShoutRequest(FastIoTRequest):
    _reply_cls = Shouted
    text: str
"""

SERVICE = '''%%service
class Shouter(FastIoTService):
    """Shouts what it is told ({version})."""

    @reply(subject=ShoutRequest.get_reply_subject("cell"))
    async def shout(self, request: ShoutRequest) -> Shouted:
        return Shouted(text=request.text.upper())
'''

ASK = """
broker = await workbench.connection()
print((await broker.request(ShoutRequest.get_reply_subject("cell"), ShoutRequest(text="hi"), timeout=5)).text)
"""


def _ask(subject: str, server: NatsServer) -> dict:
    async def ask() -> dict:
        broker = await NatsBrokerConnection.connect(servers=server.url)
        try:
            return json.loads((await broker.request_raw(subject, b"", timeout=5)).data)
        finally:
            await broker.close()

    return asyncio.run(ask())


def _discover(server: NatsServer) -> list:
    async def run() -> list:
        broker = await NatsBrokerConnection.connect(servers=server.url)
        try:
            return [s for s in await discover(timeout=0.5, connection=broker) if s.name == "Shouter"]
        finally:
            await broker.close()

    return asyncio.run(run())


def test_a_service_cell_is_discoverable_with_live_stats(kernel: Kernel, nats_server: NatsServer) -> None:
    kernel.run_ok("%load_ext fastiot_widgets")
    kernel.run_ok(MODELS)
    cell = nbformat.v4.new_code_cell()
    kernel.client.nb.cells.append(cell)
    kernel.run_ok(SERVICE.format(version="v1"), cell)
    assert "HI" in kernel.run_ok(ASK).text

    info = ServiceInfo.from_dict(_ask("$SRV.INFO.Shouter", nats_server))
    assert info.description == "Shouts what it is told (v1)."
    assert [(e.name, e.subject) for e in info.endpoints] == [("shout", "v1.shout_request.cell")]
    stats = ServiceStats.from_dict(_ask(f"$SRV.STATS.Shouter.{info.id}", nats_server))
    assert stats.endpoints[0].num_requests == 1

    # Run the cell again: the new definition replaces the old one, which no longer answers.
    kernel.run_ok(SERVICE.format(version="v2"), cell)
    [shouter] = _discover(nats_server)
    assert shouter.description == "Shouts what it is told (v2)." and shouter.id != info.id

    kernel.run_ok("%service_stop Shouter")
    assert _discover(nats_server) == []
