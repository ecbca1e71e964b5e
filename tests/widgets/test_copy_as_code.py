"""Copy as code: the generated cells run (against the session's real nats-server) and do what the widget
did; the button inserts a cell through JupyterLab's commands, or shows the code where none answers."""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
import enum
import inspect
import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
from nats.aio.msg import Msg as NatsMsg

from fastiot.capture import MessageCapture
from fastiot.core import FastIoTRequest, FastIoTResponse, FastIoTService
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.exceptions import RequestTimeoutError
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from fastiot_widgets import LivePlot, MessageTable, SubjectBrowser
from fastiot_widgets._code import (
    INSERT_CELL_BELOW,
    REPLACE_SELECTION,
    RESERVED_NAMES,
    CopyAsCode,
    code_for_browser,
    code_for_capture,
    code_for_plot,
    code_for_publish,
    code_for_record,
    code_for_request,
    code_for_table,
    python_literal,
)
from fastiot_widgets._history_code import code_for_load, code_for_record_subjects, code_for_replay
from fastiot_widgets.errors import CodeGenerationError
from tests.kernel_util import running_kernel
from tests.waits import wait_for_trait

TIMEOUT = 10.0


async def run_cell(code: str) -> dict[str, Any]:
    """Run ``code`` as IPython runs a cell (top-level ``await`` allowed); returns its namespace."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    compiled = compile(code, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)
    if inspect.iscoroutine(result):
        await result
    return namespace


async def _received(broker: NatsBrokerConnection, subject: str, code: str) -> NatsMsg:
    """Subscribe to ``subject``, run ``code``, and return the one message it published."""
    queue: asyncio.Queue[NatsMsg] = asyncio.Queue()

    async def on_msg(msg: NatsMsg) -> None:
        await queue.put(msg)

    subscription = await broker.subscribe_raw(subject, on_msg)
    await broker.flush()
    try:
        await run_cell(code)
        return await asyncio.wait_for(queue.get(), TIMEOUT)
    finally:
        await subscription.unsubscribe()


class Color(enum.Enum):
    RED = "red"


@pytest.mark.parametrize(
    "value",
    [
        {"value": 21.5, "unit": "degC", "ok": True, "n": None, "tags": ["a", "b"], "nested": {"a.b": 1}},
        [1, (2,), {3}, b"\x00\xff", 'it\'s "quoted"', "line\nbreak"],
        dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc),
        dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.date(2024, 5, 1),
        dt.timedelta(minutes=5),
        {"long": list(range(60)), "deep": {"x": {"y": {"z": "w" * 60}}}},
        Color.RED,
        float("inf"),
    ],
)
def test_python_literal_evaluates_to_the_value(value: Any) -> None:
    from fastiot_widgets._code import _Source

    source = _Source()
    literal = python_literal(value, source)
    namespace: dict[str, Any] = {"Color": Color}
    for line in source.imports:
        if "test_copy_as_code" not in line:
            exec(line, namespace)
    assert eval(literal, namespace) == value
    assert all(len(line) <= 100 for line in literal.splitlines()), literal


def test_python_literal_of_a_model_and_what_has_no_literal() -> None:
    thing = Thing(machine="press_1", name="temperature", value=21.5, unit="degC")
    literal = python_literal(thing)
    assert literal.startswith("Thing(machine=")
    # Fields left to their defaults stay out: the code makes a fresh timestamp, as the widget did.
    assert "timestamp" not in literal
    copy = eval(literal, {"Thing": Thing})
    assert copy.model_dump(exclude={"timestamp"}) == thing.model_dump(exclude={"timestamp"})
    stamped = thing.model_copy(update={"timestamp": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)})
    stamped = Thing(**stamped.model_dump())
    assert eval(python_literal(stamped), {"Thing": Thing, "datetime": dt}) == stamped
    with pytest.raises(CodeGenerationError, match="no Python literal"):
        python_literal({"sock": object()})
    with pytest.raises(CodeGenerationError, match="encoding must be one of"):
        code_for_publish("a", {}, encoding="yaml")
    with pytest.raises(CodeGenerationError, match="text payload must be a str"):
        code_for_publish("a", {"x": 1}, encoding="text")


async def test_publish_code_sends_the_same_message(broker: NatsBrokerConnection, prefix: str) -> None:
    subject = f"{prefix}.pub"
    payload = {"value": 1.5, "at": dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc), "tags": ["x"]}
    code = code_for_publish(subject, payload, headers={"origin": "notebook"})
    msg = await _received(broker, subject, code)
    assert msgpack.unpackb(msg.data, timestamp=3) == payload
    assert msg.headers == {"origin": "notebook"}

    msg = await _received(broker, subject, code_for_publish(subject, {"a": [1, 2]}, encoding="json"))
    assert json.loads(msg.data) == {"a": [1, 2]} and not msg.headers
    msg = await _received(broker, subject, code_for_publish(subject, "on", encoding="text"))
    assert msg.data == b"on"
    msg = await _received(broker, subject, code_for_publish(subject, b"\x00\x01", encoding="bytes"))
    assert msg.data == b"\x00\x01"


async def test_publish_code_of_a_model_sends_it_as_fastiot_does(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    at = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    thing = Thing(machine="press_1", name="temperature", value=21.5, unit="degC", timestamp=at)
    subject = f"{prefix}.thing"
    code = code_for_publish(subject, thing)
    assert "from fastiot.msg.thing import Thing" in code
    msg = await _received(broker, subject, code)
    assert Thing.model_validate(msgpack.unpackb(msg.data, timestamp=3)) == thing


async def test_request_code_prints_the_round_trip_and_decodes_the_reply(
    broker: NatsBrokerConnection, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    subject = f"{prefix}.double"

    async def double(msg: NatsMsg) -> None:
        await msg.respond(pack({"answer": msgpack.unpackb(msg.data)["n"] * 2, "seen": msg.headers}))

    replier = await broker.subscribe_raw(subject, double)
    await broker.flush()
    code = code_for_request(subject, {"n": 21}, headers={"trace": "t1"}, timeout=TIMEOUT)
    assert code.endswith("\nanswer"), "the cell's last line is the decoded reply, which the notebook shows"
    try:
        namespace = await run_cell(code)
    finally:
        await replier.unsubscribe()
    assert namespace["answer"] == {"answer": 42, "seen": {"trace": "t1"}}
    assert "answered in" in capsys.readouterr().out


async def test_request_code_raises_the_workbenchs_timeout_error(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    subject = f"{prefix}.silent"

    async def silent(msg: NatsMsg) -> None:
        pass  # subscribed, so NATS cannot say "no responders", and never answers

    listener = await broker.subscribe_raw(subject, silent)
    await broker.flush()
    try:
        with pytest.raises(RequestTimeoutError) as timed_out:
            await run_cell(code_for_request(subject, "ping", encoding="text", timeout=0.2))
    finally:
        await listener.unsubscribe()
    assert timed_out.value.subject == subject and timed_out.value.timeout == 0.2


async def test_table_capture_and_browser_code_open_the_same_views(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    namespace = await run_cell(code_for_table(f"{prefix}.>", max_rows=500))
    table = namespace["table"]
    assert isinstance(table, MessageTable)
    assert table.capture.patterns == [f"{prefix}.>"] and table.capture.max_rows == 500
    await table.start()
    assert table.running
    await table.aclose()

    namespace = await run_cell(code_for_table([(f"{prefix}.a", Thing), (f"{prefix}.b", None)]))
    table = namespace["table"]
    assert table.capture.targets == [(f"{prefix}.a", Thing), (f"{prefix}.b", None)]
    await table.aclose()

    namespace = await run_cell(code_for_capture([f"{prefix}.a", f"{prefix}.b"], max_rows=10))
    capture = namespace["capture"]
    assert isinstance(capture, MessageCapture) and capture.is_running
    await broker.publish_raw(f"{prefix}.b", pack({"v": 7}))
    await capture.wait_for(1, timeout=TIMEOUT)
    assert capture.to_dataframe()["v"].tolist() == [7]
    await capture.stop()

    namespace = await run_cell(code_for_plot([f"{prefix}.a", f"{prefix}.b"], ["value", "x"], window=60))
    plot = namespace["plot"]
    assert isinstance(plot, LivePlot) and plot.series.selections == [
        (f"{prefix}.a", "value"),
        (f"{prefix}.a", "x"),
        (f"{prefix}.b", "value"),
        (f"{prefix}.b", "x"),
    ]
    assert plot.series.window_ns == 60e9
    await plot.start()
    assert plot.running
    await plot.aclose()

    namespace = await run_cell(code_for_browser(f"{prefix}.>"))
    browser = namespace["browser"]
    assert isinstance(browser, SubjectBrowser) and browser.index.pattern == f"{prefix}.>"
    await browser.start()
    await browser.aclose()


async def test_the_button_shows_the_code_when_no_jupyterlab_answers() -> None:
    calls = []

    def make() -> str:
        calls.append(1)
        return code_for_table("v1.>")

    button = CopyAsCode(make, frontend_timeout=0.05)
    assert button.code_box.layout.display == "none"
    button.button.click()
    await wait_for_trait(button, "status", lambda s: s == "shown")
    assert calls == [1] and button.code == code_for_table("v1.>")
    assert button.code_box.code == button.code and button.code_box.layout.display == ""
    assert await button.copy() == "shown" and calls == [1, 1]
    button.close()


async def test_the_button_says_why_making_the_code_failed() -> None:
    def make() -> str:
        raise CodeGenerationError("a socket has no Python literal")

    button = CopyAsCode(make, frontend_timeout=0.05)
    assert await button.copy() == "failed"
    assert "a socket has no Python literal" in button.error
    assert button.code_box.code == ""
    button.close()


async def test_the_button_inserts_a_cell_below_through_jupyterlab_commands() -> None:
    """What reaches JupyterLab: the two notebook commands, in order, with the code as the text.

    (The real browser test in tests/browser shows the cell appearing.)"""
    button = CopyAsCode(lambda: code_for_browser("v1.>"), frontend_timeout=TIMEOUT)
    frontend = button._get_frontend()
    sent: list[Any] = []
    frontend.commands.send = sent.append  # what would go over the comm to ipylab's front end
    waiting = asyncio.ensure_future(button.copy())
    await wait_for_trait(button, "status", lambda s: s == "waiting")
    assert not sent
    frontend._on_frontend_msg(None, {"event": "lab_ready"}, [])  # JupyterLab's ipylab answers
    assert await asyncio.wait_for(waiting, TIMEOUT) == "inserted"
    assert sent == [
        {"func": "execute", "payload": {"id": INSERT_CELL_BELOW, "args": {}}},
        {"func": "execute", "payload": {"id": REPLACE_SELECTION, "args": {"text": code_for_browser("v1.>")}}},
    ]
    assert button.code_box.layout.display == "none"
    button.close()


# -- the names a generated cell binds -------------------------------------------------------------------


class Count(FastIoTResponse):
    alarms: int
    threshold: float


class CountRequest(FastIoTRequest):
    _reply_cls = Count


def _tutorial_namespace() -> dict[str, Any]:
    """What a tutorial's cells have bound before its Publisher's code is copied (notebook 02)."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(
        "from datetime import datetime, timedelta\n"
        "from fastiot.core import FastIoTRequest, FastIoTResponse, FastIoTService, loop, reply, subscribe\n"
        "from fastiot.msg.thing import Thing\n"
        "import time\n",
        namespace,
    )
    namespace.update(
        broker="another connection",  # not the workbench's: the cell must not take the name
        Count=Count,
        CountRequest=CountRequest,
        response=1,
        answer=2,
        msg=3,
        payload=4,
        started=5,
        table=6,
        pack="the user's pack",
        time=dt.time(12, 0),  # `from datetime import time`, say
    )
    return namespace


async def test_request_code_decodes_the_reply_model_and_shadows_nothing(
    broker: NatsBrokerConnection, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Notebook 02: Publisher(AlarmCountRequest)'s code, then the next %%service cell's @reply(...)."""
    namespace = _tutorial_namespace()
    before = dict(namespace)
    monkeypatch.setattr("fastiot_widgets._code.user_namespace", lambda: namespace)
    subject = f"{prefix}.count_request"

    async def count(msg: NatsMsg) -> None:
        await msg.respond(pack({"alarms": 3, "threshold": 56.0}))

    replier = await broker.subscribe_raw(subject, count)
    await broker.flush()
    code = code_for_request(subject, CountRequest(), timeout=TIMEOUT, reply_cls=Count)
    compiled = compile(code, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    try:
        result = eval(compiled, namespace)
        if inspect.iscoroutine(result):
            await result
    finally:
        await replier.unsubscribe()
    answers = [v for k, v in namespace.items() if k not in before and isinstance(v, Count)]
    assert answers == [Count(alarms=3, threshold=56.0)], code
    # Every name the notebook had still means what it meant.
    assert all(namespace[name] is value for name, value in before.items() if name != "__builtins__"), code
    # The next cell of the tutorial defines a service with the notebook's `reply`.
    exec(
        "class Watch(FastIoTService):\n"
        "    @reply(subject=CountRequest.get_reply_subject())\n"
        "    async def count(self, request: CountRequest) -> Count:\n"
        "        return Count(alarms=0, threshold=1.0)\n",
        namespace,
    )
    assert issubclass(namespace["Watch"], FastIoTService)


@pytest.mark.parametrize(
    "make",
    [
        lambda: code_for_publish("v1.x", {"at": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)}),
        lambda: code_for_publish("v1.x", {"n": 1}, encoding="json"),
        lambda: code_for_publish("v1.x", Thing(machine="m", name="n", value=1.0)),
        lambda: code_for_request("v1.x", {"n": 1}),
        lambda: code_for_table([("v1.a", Thing), ("v1.b", None)]),
        lambda: code_for_capture("v1.>", wait_for=1),
        lambda: code_for_plot("v1.a", window=60),
        lambda: code_for_record("r", "v1.>"),
        lambda: code_for_browser("v1.>"),
        lambda: code_for_load("r", dt.timedelta(minutes=1), dt.datetime(2024, 1, 1), ["v1.a"]),
        lambda: code_for_replay("r", speed=10, start=dt.timedelta(minutes=1)),
        lambda: code_for_record_subjects("r", ["v1.a"], max_age=dt.timedelta(hours=1)),
    ],
)
def test_no_generated_cell_rebinds_a_name_the_notebook_holds(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = _tutorial_namespace()
    monkeypatch.setattr("fastiot_widgets._code.user_namespace", lambda: namespace)
    code = make()
    rebound = _bound_names(code) & {name for name in namespace if not name.startswith("__")}
    same = {  # an import of the very object the notebook holds under that name changes nothing
        name
        for name in rebound
        if _imports(code).get(name) is not None and _imports(code)[name] is namespace[name]
    }
    assert rebound == same, code


def test_without_a_kernel_the_reserved_names_are_kept_free() -> None:
    code = code_for_request("v1.x", {"n": 1})
    variables = _bound_names(code) - set(_imports(code))  # an import binds what the name means anyway
    assert variables & (RESERVED_NAMES - {"broker"}) == set(), code
    assert "broker" in variables, "the connection keeps the name the tutorials give it"


def _bound_names(code: str) -> set[str]:
    tree = ast.parse(code)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
    return names


def _imports(code: str) -> dict[str, Any]:
    """What each import line of ``code`` binds, by name."""
    bound: dict[str, Any] = {}
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            scratch: dict[str, Any] = {}
            exec(compile(ast.Module(body=[node], type_ignores=[]), "<imports>", "exec"), scratch)
            bound.update({k: v for k, v in scratch.items() if k != "__builtins__"})
    return bound


TUTORIAL_SERVICE = """%%service
class OverheatWatch(FastIoTService):
    @reply(subject=AlarmCountRequest.get_reply_subject())
    async def alarm_count(self, request: AlarmCountRequest) -> AlarmCount:
        return AlarmCount(alarms=7, threshold=56.0)
"""


def test_the_publishers_request_code_in_notebook_02(nats_server: NatsServer, tmp_path: Path) -> None:
    """In a kernel, as the tutorial runs: the copied request cell answers with the reply model, and the
    next %%service cell's ``@reply(...)`` still is FastIoT's ``reply``."""
    with running_kernel(tmp_path, {"FASTIOT_NATS_SERVERS": nats_server.url}) as kernel:
        kernel.run_ok(
            "%load_ext fastiot_widgets\n"
            "from fastiot import workbench\n"
            "from fastiot.core import FastIoTRequest, FastIoTResponse, FastIoTService, reply, subscribe\n"
            "broker = await workbench.connection()\n"
            "class AlarmCount(FastIoTResponse):\n"
            "    alarms: int\n"
            "    threshold: float\n"
            "class AlarmCountRequest(FastIoTRequest):\n"
            "    _reply_cls = AlarmCount\n"
        )
        kernel.run_ok(TUTORIAL_SERVICE)
        code = kernel.run_ok(
            "from fastiot_widgets import Publisher\n"
            "pub = Publisher(AlarmCountRequest)\n"
            "pub.copy_code.frontend_timeout = 0.05  # no JupyterLab: the code is shown\n"
            "assert await pub.copy_code.copy() == 'shown', pub.copy_code.error\n"
            "print(pub.copy_code.code)"
        ).text
        assert "broker = await workbench.connection()" in code, "the notebook's broker is this connection"
        out = kernel.run_ok(code)
        assert "AlarmCount(alarms=7, threshold=56.0)" in out.text, out.text
        kernel.run_ok(TUTORIAL_SERVICE)  # the tutorial's next %%service cell, with @reply(...)
        out = kernel.run_ok(
            "subject = AlarmCountRequest.get_reply_subject()\n"
            "print(await broker.request(subject, AlarmCountRequest(), timeout=5))\n"
            "%service_stop OverheatWatch"
        )
        assert "alarms=7" in out.text
