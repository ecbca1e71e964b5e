"""A few recorded messages for each ``@subscribe`` handler of a service: what an exported test replays.

Example:
    >>> from fastiot.services.recorded import recorded_messages
    >>> messages = await recorded_messages(OverheatWatch, "plant")  # doctest: +SKIP
    >>> messages[0][0]  # doctest: +SKIP
    'v1.thing.press_1.temperature'
"""

from __future__ import annotations

import json
from typing import Any

import nats.errors
import nats.js.errors
from pydantic import BaseModel, ValidationError

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.data_models import Subject
from fastiot.core.serialization import unpackb
from fastiot.core.service import FastIoTService
from fastiot.history.recording import Recording
from fastiot.workbench import use_connection

__all__ = ["recorded_messages"]


async def recorded_messages(
    service: type[FastIoTService],
    recording: str,
    *,
    per_handler: int = 3,
    connection: NatsBrokerConnection | None = None,
) -> list[tuple[str, Any]]:
    """The first ``per_handler`` messages of ``recording`` on each ``@subscribe`` subject of ``service``.

    Args:
        service: The service class.
        recording: The recording's name.
        per_handler: Messages per handler, at most.
        connection: The broker connection (default: see :func:`fastiot.workbench.use_connection`).

    Returns:
        (subject, payload) pairs, each payload JSON-compatible (a model's ``model_dump(mode="json")``); a
        message that does not validate as the handler's model is skipped.

    Raises:
        RecordingNotFoundError: There is no such recording.
    """
    rec = await Recording.open(recording, connection=connection)
    found: list[tuple[str, Any]] = []
    async with use_connection(connection) as conn:
        jsm = conn.client.jsm()
        for name in sorted(dir(service)):
            subject = getattr(getattr(service, name, None), "_fastiot_subject", None)
            if not isinstance(subject, Subject):
                continue
            seq = 1
            for _ in range(per_handler):
                try:
                    raw = await jsm.get_msg(rec.name, seq=seq, subject=subject.name, next=True)
                except (nats.js.errors.NotFoundError, nats.errors.Error):
                    break  # no (more) message on that subject
                seq = (raw.seq or seq) + 1
                payload = _payload(subject.msg_cls, raw.data or b"")
                if payload is not None and raw.subject:
                    found.append((raw.subject, payload))
    return found


def _payload(msg_cls: Any, data: bytes) -> Any:
    try:
        value = unpackb(data)
        if isinstance(msg_cls, type) and issubclass(msg_cls, BaseModel):
            return msg_cls.model_validate(value).model_dump(mode="json")
        return json.loads(json.dumps(value, default=str)) if isinstance(value, dict) else None
    except (ValueError, ValidationError, TypeError):
        return None
