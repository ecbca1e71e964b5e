"""The SubjectBrowser's detail pane: the selected subject's statistics, headers, model, messages and diff.

:func:`subject_detail` builds the pane's content as plain data (a dict: what tests read), decoding
each message with :func:`fastiot.payloads.decode`, so text payloads show as text and typed subjects
as their model; :class:`SubjectDetailView` (``subject_detail.js``) draws it. The diff compares two of
the subject's recent messages (the last two unless others are picked) with
:func:`fastiot.payloads.diff`; the newest message's fields are listed with the changed ones marked and
a plot button on each numeric one.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any

import anywidget
import traitlets

from fastiot._callbacks import CallbackList
from fastiot.payloads import MISSING, Decoded, diff, flatten, model_for_subject, model_schema, to_text
from fastiot.rates import describe_rate
from fastiot.series import numeric_value
from fastiot.subjects import SubjectMessage

from ._common import front_end_file
from ._loop_bound import LoopBound

__all__ = ["DEFAULT_LAST_MESSAGES", "SubjectDetailView", "folder_detail", "hexdump", "subject_detail"]

DEFAULT_LAST_MESSAGES = 10
_MAX_TEXT_CHARS = 2_000
_MAX_FIELD_CHARS = 200
_MAX_FIELDS = 200
_MAX_HEXDUMP_BYTES = 256


def hexdump(data: bytes, limit: int = _MAX_HEXDUMP_BYTES) -> str:
    """``data`` as offset, hex and printable characters, 16 bytes a line, at most ``limit`` bytes.

    Example:
        >>> hexdump(b"hi")
        '0000  68 69                                            hi'
    """
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        chunk = data[offset : offset + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:04x}  {chunk.hex(' '):<47}  {text}")
    if len(data) > limit:
        lines.append(f"... {len(data) - limit} more bytes")
    return "\n".join(lines)


def _pretty(decoded: Decoded) -> str:
    """The payload as a person reads it: text as it is, structures as indented JSON."""
    if decoded.kind == "text" and isinstance(decoded.value, str):
        text = decoded.value
    elif decoded.error is not None:
        text = decoded.error
    else:
        flat = to_text(decoded.value, max_chars=_MAX_TEXT_CHARS * 4)
        try:  # indent what to_text wrote as one line
            text = json.dumps(json.loads(flat), indent=2, ensure_ascii=False)
        except ValueError:
            text = flat
    return text if len(text) <= _MAX_TEXT_CHARS else text[: _MAX_TEXT_CHARS - 1] + "…"


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def _short(value: Any) -> str:
    if value is MISSING:
        return ""
    return to_text(value, max_chars=_MAX_FIELD_CHARS)


def subject_detail(
    subject: str,
    messages: Sequence[SubjectMessage],
    *,
    count: int,
    rate: float,
    size: int,
    first_seen_ns: int,
    last_seen_ns: int,
    diff_pair: Sequence[int] = (1, 0),
    show_raw: bool = False,
    mqtt: tuple[str, int, bool] | None = None,
) -> dict[str, Any]:
    """The detail pane's content for a subject, from its recent messages (newest first).

    Args:
        subject: The subject.
        messages: Its recent messages, newest first.
        count: Messages seen; ``rate`` messages/s; ``size`` payload bytes seen.
        first_seen_ns: When the first message came (ns since the epoch); ``last_seen_ns`` the last.
        diff_pair: Which two messages to diff, as indexes into ``messages`` (older, newer); out of
            range falls back to the last two.
        show_raw: Add each message's bytes as a hex dump.
        mqtt: ``(topic, qos, retained)`` when an MQTT client published the newest message: the pane is
            titled with the topic (see :meth:`fastiot.subjects.SubjectIndex.mqtt`).

    Returns:
        A dict with ``path``, ``kind`` ("subject"), ``summary``, ``model`` (name and JSON schema, or
        None), ``headers`` (the newest message's), ``messages``, ``fields`` (the newest payload's
        fields: path, value, numeric, changed) and ``diff`` (``a``, ``b``, ``changes`` of path, old,
        new, change) or None with fewer than two messages.
    """
    decoded = [m.decoded for m in messages]
    model = model_for_subject(subject)
    schema = model_schema(subject) if model is not None else None
    detail: dict[str, Any] = {
        "path": subject,
        "kind": "subject",
        "mqtt": None if mqtt is None else {"topic": mqtt[0], "qos": mqtt[1], "retained": mqtt[2]},
        "summary": {
            "count": count,
            "rate": describe_rate(rate),
            "bytes": size,
            "first_seen": first_seen_ns // 1_000_000,
            "last_seen": last_seen_ns // 1_000_000,
        },
        "model": None
        if model is None
        else {"name": model.__name__, "schema": json.dumps(schema, indent=2) if schema else ""},
        "headers": dict(messages[0].headers or {}) if messages else {},
        "messages": [
            {
                "index": i,
                "time": _ms(m.received_at),
                "size": len(m.data),
                "kind": d.kind,
                "decoder": d.decoder or d.kind,
                "error": d.error,
                "note": d.note,
                "text": _pretty(d),
                "headers": dict(m.headers) if m.headers else None,
                "hex": hexdump(m.data) if show_raw else "",
            }
            for i, (m, d) in enumerate(zip(messages, decoded, strict=True))
        ],
        "fields": [],
        "diff": None,
    }
    ok = [i for i, d in enumerate(decoded) if d.error is None]
    if not ok:
        return detail
    newest = decoded[0] if decoded[0].error is None else None
    changed: set[str] = set()
    if len(ok) >= 2:
        a, b = [*diff_pair, 1, 0][:2]
        if not (0 <= a < len(decoded) and 0 <= b < len(decoded)) or a == b:
            a, b = ok[1], ok[0]
        changes = diff(decoded[a].value, decoded[b].value)
        detail["diff"] = {
            "a": a,
            "b": b,
            "a_time": _ms(messages[a].received_at),
            "b_time": _ms(messages[b].received_at),
            "changes": [
                {
                    "path": path,
                    "old": _short(old),
                    "new": _short(new),
                    "change": "added" if old is MISSING else "removed" if new is MISSING else "changed",
                }
                for path, old, new in changes
            ],
        }
        if b == 0:  # the newest message's fields are marked by what changed in it
            changed = {path for path, _old, _new in changes}
    if newest is not None:
        fields = flatten(newest.value)
        detail["fields"] = [
            {
                "path": path,
                "value": _short(value),
                "numeric": numeric_value(value) is not None,
                "changed": path in changed,
            }
            for path, value in list(fields.items())[:_MAX_FIELDS]
        ]
    return detail


def folder_detail(path: str, *, subjects: int, count: int, rate: float, last_seen_ns: int) -> dict[str, Any]:
    """The detail pane's content for a subject prefix (a folder of the tree)."""
    return {
        "path": path,
        "kind": "folder",
        "summary": {
            "subjects": subjects,
            "count": count,
            "rate": describe_rate(rate),
            "last_seen": last_seen_ns // 1_000_000,
        },
    }


class SubjectDetailView(LoopBound, anywidget.AnyWidget):
    """Draws :func:`subject_detail` (``subject_detail.js``); picks and plot clicks come back to Python.

    From the browser, as messages: ``{"type": "diff", "pair": [a, b]}`` (the two messages picked) and
    ``{"type": "plot", "field": path}`` (a click on a numeric field's plot button).
    """

    _esm = front_end_file("subject_detail.js")
    _css = front_end_file("subject_detail.css")
    detail = traitlets.Dict(help="What the pane shows (see subject_detail); {} shows a hint.").tag(sync=True)
    diff_pair = traitlets.List(
        traitlets.Int(), default_value=[1, 0], help="The messages diffed: indexes (0 = newest), older first."
    ).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._plot_callbacks: CallbackList[[str]] = CallbackList("plot click")
        self.on_msg(self._on_custom_msg)

    def on_plot(self, callback: Callable[[str], None], remove: bool = False) -> None:
        """Call ``callback(field)`` when a numeric field's plot button is clicked (``remove=True`` stops)."""
        self._plot_callbacks.register(callback, remove=remove)

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        # (Not `_handle_msg`: that is ipywidgets' own handler of every comm message.)
        if not isinstance(content, dict):
            return
        if content.get("type") == "plot" and isinstance(content.get("field"), str):
            self._plot_callbacks(content["field"])
        elif content.get("type") == "diff":
            pair = content.get("pair")
            if isinstance(pair, list) and len(pair) == 2 and all(isinstance(i, int) for i in pair):
                self.diff_pair = pair
