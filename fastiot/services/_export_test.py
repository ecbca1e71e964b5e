"""The pytest file :func:`fastiot.services.export.export_service` writes beside an exported service."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from fastiot.core.data_models import ReplySubject, Subject
from fastiot.core.service import FastIoTService
from fastiot.core.subject_helper import subject_matches
from fastiot.services.examples import example_message

__all__ = ["test_source"]

_TEMPLATE = '''"""Tests of {cls}, written by %service_export: they pass as written; extend them.

``pytest {test_file}`` starts {cls} in a separate process against the broker of
FASTIOT_NATS_* (or a nats-server of its own), sends it the messages below and checks what its
handlers counted.
"""

import asyncio
import sys
import time
from pathlib import Path

from fastiot.core import ReplySubject, Subject
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.testlib import BackgroundProcess, populate_test_env

sys.path.insert(0, str(Path(__file__).resolve().parent))

from {module} import {imports}  # noqa: E402

# (handler, subject, model, payload) for each @subscribe handler: {origin}.
MESSAGES = {messages}
# (handler, subject, request model, reply model, payload) for each @reply handler.
REQUESTS = {requests}
TIMEOUT = 60.0


def test_{snake}_handles_its_messages_and_answers_its_requests() -> None:
    populate_test_env()
    counts, expected, exitcode = asyncio.run(asyncio.wait_for(exercise(), TIMEOUT))
    for handler, n in expected.items():
        assert counts.get(handler) == {{"received": n, "errors": 0}}, (handler, counts)
    assert exitcode == 0  # it stopped gracefully on SIGTERM


async def exercise() -> tuple[dict, dict, int | None]:
    expected: dict[str, int] = {{}}
    async with BackgroundProcess({cls}, startup_time=0) as service:
        broker = await NatsBrokerConnection.connect()
        try:
            for handler, subject, model, payload in MESSAGES:
                await broker.publish(Subject(name=subject, msg_cls=model), model.model_validate(payload))
                expected[handler] = expected.get(handler, 0) + 1
            for handler, subject, model, reply_model, payload in REQUESTS:
                reply_subject = ReplySubject(name=subject, msg_cls=model, reply_cls=reply_model)
                answer = await broker.request(reply_subject, model.model_validate(payload), timeout=10)
                assert isinstance(answer, reply_model)
                expected[handler] = expected.get(handler, 0) + 1
            await broker.flush()
            counts = await asyncio.to_thread(settled_counts, service, expected)
        finally:
            await broker.close()
    return counts, expected, service.exitcode


def settled_counts(service: BackgroundProcess, expected: dict[str, int]) -> dict:
    """The service's counters once every handler received what was sent and they stopped changing."""
    deadline = time.monotonic() + TIMEOUT / 2
    previous = None
    while time.monotonic() < deadline:
        counts = service.handler_counts()
        done = all(counts.get(h, {{}}).get("received", 0) >= n for h, n in expected.items())
        if done and counts == previous:
            return counts
        previous = counts if done else None
        time.sleep(0.1)
    return service.handler_counts()
'''


def _concrete(subject: str) -> str:
    """A subject a message can be published on, matching the pattern ``subject``."""
    return ".".join("example" if token in ("*", ">") else token for token in subject.split("."))


def _payload(model: Any) -> Any:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return example_message(model).model_dump(mode="json")
    return {}


def _model_name(model: Any) -> str:
    return model.__name__ if isinstance(model, type) else "dict"


def test_source(
    service: type[FastIoTService],
    module: str,
    *,
    messages: Iterable[tuple[str, Any]] | None = None,
    recording: str | None = None,
    per_handler: int = 3,
) -> str:
    """The source of the pytest file of ``service`` exported to the module ``module``.

    Args:
        service: The service class (its ``@subscribe`` and ``@reply`` handlers are exercised).
        module: The exported module's name (the test imports the service and its models from it).
        messages: (subject, payload dict) pairs to send to the subscriptions, e.g. from a recording; a
            handler that none matches gets examples made from its model's JSON schema.
        recording: The recording ``messages`` come from (named in a comment).
        per_handler: Messages sent to each ``@subscribe`` handler.

    Returns:
        The file's text.
    """
    pool = list(messages or ())
    imports = {service.__name__}
    message_rows: list[tuple[str, str, Any, Any]] = []
    request_rows: list[tuple[str, str, Any, Any, Any]] = []
    used_recording = False
    for name in sorted(dir(service)):
        fn = getattr(service, name, None)
        reply_subject = getattr(fn, "_fastiot_reply_subject", None)
        subject = getattr(fn, "_fastiot_subject", None)
        if isinstance(reply_subject, ReplySubject):
            imports.update(_model_name(m) for m in (reply_subject.msg_cls, reply_subject.reply_cls))
            request_rows.append(
                (
                    name,
                    _concrete(reply_subject.name),
                    _Name(_model_name(reply_subject.msg_cls)),
                    _Name(_model_name(reply_subject.reply_cls)),
                    _payload(reply_subject.msg_cls),
                )
            )
        elif isinstance(subject, Subject):
            imports.add(_model_name(subject.msg_cls))
            matched = [(s, p) for s, p in pool if subject_matches(s, subject.name)][:per_handler]
            used_recording = used_recording or bool(matched)
            rows = matched or [(_concrete(subject.name), _payload(subject.msg_cls))] * per_handler
            message_rows += [(name, s, _Name(_model_name(subject.msg_cls)), p) for s, p in rows]
    imports.discard("dict")
    origin = (
        f"the first ones of the recording {recording!r}"
        if used_recording and recording
        else "examples made from the models' JSON schemas"
    )
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in service.__name__).lstrip("_")
    return _TEMPLATE.format(
        cls=service.__name__,
        module=module,
        test_file=f"test_{module}.py",
        imports=", ".join(sorted(imports)),
        origin=origin,
        messages=_literal(message_rows),
        requests=_literal(request_rows),
        snake=snake,
    )


class _Name:
    """A name written into the source as is (a model class), not as a string."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def _literal(rows: list[Any]) -> str:
    if not rows:
        return "[]"
    return "[\n" + "".join(f"    ({', '.join(repr(v) for v in row)}),\n" for row in rows) + "]"
