"""Copy as code: every widget action as the Python that does the same, in a new cell below.

Two halves, one module each:

- ``code_for_*`` functions turn an action (publish, request, open a table, capture, plot, record,
  browse) into a cell's source. They are plain functions, unit-tested by running what they return
  against a real broker, and they only use fastiot's public API, so the cell keeps working after the
  widget is gone. They are here.
- :class:`CopyAsCode` (in :mod:`fastiot_widgets._code_button`, re-exported here), a button a
  widget places beside its action. A click asks the widget for the code and inserts it as a new cell
  below the active one (the cell whose output was clicked) through JupyterLab's own commands
  ``notebook:insert-cell-below`` and ``notebook:replace-selection``, sent by ipylab. Where no
  JupyterLab answers (VS Code, classic Notebook without ipylab, nbclient), the code appears in a
  read-only text box under the button, with a Copy button and an attempt to put it on the clipboard.

Example:
    >>> from fastiot_widgets._code import CopyAsCode, code_for_table
    >>> print(code_for_table("v1.thing.>"))
    from fastiot_widgets import MessageTable
    <BLANKLINE>
    table = MessageTable("v1.thing.>")
    table
    >>> button = CopyAsCode(lambda: code_for_table("v1.thing.>"))  # doctest: +SKIP
"""

from __future__ import annotations

import builtins
import datetime as dt
import enum
import keyword
import logging
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pydantic

import fastiot.core

from ._code_button import (
    DEFAULT_FRONTEND_TIMEOUT,
    INSERT_CELL_BELOW,
    REPLACE_SELECTION,
    CodeBox,
    CopyAsCode,
    CopyButton,
    insert_cell_below,
)
from .errors import CodeGenerationError

__all__ = [
    "DEFAULT_FRONTEND_TIMEOUT",
    "INSERT_CELL_BELOW",
    "REPLACE_SELECTION",
    "CodeBox",
    "CopyAsCode",
    "CopyButton",
    "code_for_browser",
    "code_for_capture",
    "code_for_plot",
    "code_for_publish",
    "code_for_publish_mqtt",
    "code_for_record",
    "code_for_request",
    "code_for_table",
    "insert_cell_below",
    "python_literal",
]

PAYLOAD_ENCODINGS = ("msgpack", "json", "text", "bytes")
_WRAP_AT = 88  # a literal longer than this is laid out one item per line

_logger = logging.getLogger("fastiot_widgets")


# -- Python literals ----------------------------------------------------------------------------------


# Names a notebook binds by convention (the tutorials, the README): a generated cell never rebinds
# them, even before the cell that binds them has run. The names the kernel's namespace holds are
# checked too (:func:`user_namespace`).
RESERVED_NAMES: frozenset[str] = frozenset(
    {
        *fastiot.core.__all__,
        *keyword.kwlist,
        *dir(builtins),
        "Thing",
        "broker",
        "demo",
        "display",
        "get_ipython",
        "plant",
        "workbench",
    }
)


def user_namespace() -> Mapping[str, Any]:
    """The namespace of the running IPython kernel's cells; empty outside IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell.user_ns if shell is not None else {}


class _Source:
    """A cell being written: its import lines (deduplicated, sorted), its statements, the names it binds.

    Every name the cell binds (a variable or an import) is checked against ``namespace`` (the
    kernel's, by default) and :data:`RESERVED_NAMES`: a name already bound to something else gets a
    suffix (``response_2``) or, for an import, an alias, so running the cell never shadows a name the
    notebook uses (``reply``, ``loop``, ``Thing``, ``broker``...).
    """

    def __init__(self, namespace: Mapping[str, Any] | None = None) -> None:
        self.namespace: Mapping[str, Any] = user_namespace() if namespace is None else namespace
        self.imports: set[str] = set()
        self.lines: list[str] = []
        self._bound: set[str] = set()
        self._imported: dict[str, str] = {}  # import line as asked -> the name it binds

    def need(self, line: str) -> str:
        """Add ``import m`` or ``from m import n``; returns the name to use (an alias if taken)."""
        if line in self._imported:
            return self._imported[line]
        parts = line.split()
        module, name = (parts[1], parts[1]) if parts[0] == "import" else (parts[1], parts[3])
        target = _resolve_import(module, None if parts[0] == "import" else name)
        bound = self._free(name, lambda value: target is not _UNRESOLVED and value is target, reserved=False)
        self.imports.add(line if bound == name else f"{line} as {bound}")
        self._imported[line] = bound
        return bound

    def var(self, name: str, same: Callable[[Any], bool] | None = None) -> str:
        """A free variable name like ``name`` for the cell to bind.

        ``same(value)`` says whether the namespace's current value of ``name`` is what the cell binds
        anyway (then ``name`` is kept, reserved or not).
        """
        return self._free(name, same, reserved=same is None)

    def _free(self, name: str, same: Callable[[Any], bool] | None, *, reserved: bool) -> str:
        candidate, n = name, 1
        while True:
            if candidate not in self._bound:
                if candidate in self.namespace:
                    if same is not None and n == 1 and same(self.namespace[candidate]):
                        break
                elif not (reserved and candidate in RESERVED_NAMES):
                    break
            n += 1
            candidate = f"{name}_{n}"
        self._bound.add(candidate)
        return candidate

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def text(self) -> str:
        # Standard library first, then the rest; each group sorted, like ruff's isort would.
        stdlib = sorted((i for i in self.imports if _module(i) in sys.stdlib_module_names), key=_order)
        others = sorted((i for i in self.imports if _module(i) not in sys.stdlib_module_names), key=_order)
        head = "\n".join(stdlib) + ("\n\n" if stdlib and others else "") + "\n".join(others)
        return (head + "\n\n" if head else "") + "\n".join(self.lines)


_UNRESOLVED = object()


def _resolve_import(module: str, name: str | None) -> Any:
    """What ``import module`` / ``from module import name`` binds (the module is imported already)."""
    found = sys.modules.get(module)
    if found is None:
        return _UNRESOLVED
    return found if name is None else getattr(found, name, _UNRESOLVED)


def _module(line: str) -> str:
    return line.split()[1].split(".")[0]


def _order(line: str) -> tuple[bool, str]:
    return (line.startswith("from "), line.split()[1])


def python_literal(value: Any, source: _Source | None = None, *, indent: int = 0) -> str:
    """Python source that evaluates to ``value``: JSON-like data, datetimes, bytes, enums, models.

    What fits in a line stays on one line; longer containers get one item per line. Imports the
    source needs (``datetime``, a model's class) are added to ``source``.

    Raises:
        CodeGenerationError: ``value`` (or something inside it) has no literal form, e.g. a socket.

    Example:
        >>> python_literal({"value": 1.5, "tags": ["a", None]})
        '{"value": 1.5, "tags": ["a", None]}'
    """
    return _literal(value, source if source is not None else _Source(), indent)


def _literal(value: Any, src: _Source, indent: int) -> str:
    if isinstance(value, enum.Enum):  # first: a str or int Enum is an Enum in the code too
        return f"{_class_name(type(value), src)}.{value.name}"
    if value is None or isinstance(value, (bool, int, bytes)):
        return repr(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({_text(str(value))})"
    if isinstance(value, dt.datetime):
        # fromisoformat keeps the UTC offset, so an aware datetime stays aware.
        return f"{src.need('import datetime')}.datetime.fromisoformat({_text(value.isoformat())})"
    if isinstance(value, dt.timedelta):
        return f"{src.need('import datetime')}.timedelta(seconds={value.total_seconds()!r})"
    if isinstance(value, (dt.date, dt.time)):
        module = src.need("import datetime")
        return f"{module}.{type(value).__name__}.fromisoformat({_text(value.isoformat())})"
    inner = indent + 4
    if isinstance(value, pydantic.BaseModel):
        cls = type(value)
        # The fields given when it was made, in declaration order; defaults (a fresh timestamp) stay out.
        names = [n for n in cls.model_fields if n in value.model_fields_set]
        parts = [f"{n}={_literal(getattr(value, n), src, inner)}" for n in names]
        return _container(f"{_class_name(cls, src)}(", ")", parts, indent)
    if isinstance(value, Mapping):
        parts = [f"{_literal(k, src, inner)}: {_literal(v, src, inner)}" for k, v in value.items()]
        return _container("{", "}", parts, indent)
    if isinstance(value, tuple):
        parts = [_literal(v, src, inner) for v in value]
        return _container("(", ")", parts, indent, trailing=len(parts) == 1)
    if isinstance(value, (set, frozenset)):
        parts = [_literal(v, src, inner) for v in value]
        return _container("{", "}", parts, indent) if parts else "set()"
    if isinstance(value, list):
        return _container("[", "]", [_literal(v, src, inner) for v in value], indent)
    raise CodeGenerationError(
        f"a {type(value).__name__} value ({value!r:.60}) has no Python literal to copy as code; "
        "use plain data (numbers, text, lists, dicts, datetimes) or a pydantic model"
    )


def _container(open_: str, close: str, parts: list[str], indent: int, trailing: bool = False) -> str:
    flat = open_ + ", ".join(parts) + ("," if trailing else "") + close
    if not parts or (indent + len(flat) <= _WRAP_AT and "\n" not in flat):
        return flat
    pad = " " * (indent + 4)
    return open_ + "\n" + "".join(f"{pad}{p},\n" for p in parts) + " " * indent + close


def _import_of(cls: type) -> str:
    return f"from {cls.__module__} import {cls.__name__}"


def _class_name(cls: type, source: _Source) -> str:
    """How the cell names ``cls``: imported from its module, or as the notebook defined it (``__main__``)."""
    if cls.__module__ in ("__main__", "builtins"):
        return cls.__name__
    return source.need(_import_of(cls))


def _text(value: str) -> str:
    """A string literal, in double quotes where that needs no escapes (as ruff format writes them)."""
    text = repr(str(value))
    if text.startswith("'") and '"' not in value:
        text = '"' + text[1:-1].replace("\\'", "'") + '"'
    return text


def _patterns(subjects: str | Sequence[str]) -> str:
    if isinstance(subjects, str):
        return _text(subjects)
    return "[" + ", ".join(_text(s) for s in subjects) + "]"


def _options(source: _Source, options: Mapping[str, Any]) -> str:
    return "".join(f", {name}={python_literal(value, source)}" for name, value in options.items())


# -- code for each action -----------------------------------------------------------------------------


def _connect(source: _Source) -> str:
    """Bind the workbench connection; returns its name (``broker`` unless that holds something else)."""
    from fastiot import workbench

    module = source.need("from fastiot import workbench")
    name = source.var("broker", same=lambda value: value is workbench.current_connection())
    source.add(f"{name} = await {module}.connection()")
    return name


def _payload_bytes(source: _Source, payload: Any, encoding: str) -> str:
    """An expression of the payload's bytes, as the widget sent them."""
    if encoding not in PAYLOAD_ENCODINGS:
        raise CodeGenerationError(f"encoding must be one of {', '.join(PAYLOAD_ENCODINGS)}, got {encoding!r}")
    if isinstance(payload, pydantic.BaseModel):
        serialize = source.need("from fastiot.core.serialization import serialize_to_bin")
        literal = python_literal(payload, source, indent=0)
        msg = source.var("msg")
        source.add(f"{msg} = {literal}")
        return f"{serialize}({_class_name(type(payload), source)}, {msg})"
    if encoding == "text":
        if not isinstance(payload, str):
            raise CodeGenerationError(f"a text payload must be a str, got {type(payload).__name__}")
        return f"{_text(payload)}.encode()"
    if encoding == "bytes":
        if not isinstance(payload, (bytes, bytearray)):
            raise CodeGenerationError(f"a bytes payload must be bytes, got {type(payload).__name__}")
        return repr(bytes(payload))
    literal = python_literal(payload, source)
    name = source.var("payload")
    source.add(f"{name} = {literal}")
    if encoding == "json":
        return f"{source.need('import json')}.dumps({name}).encode()"
    return f"{source.need('from fastiot.core.serialization import pack')}({name})"


def _headers(source: _Source, headers: Mapping[str, str] | None) -> str:
    return f", headers={python_literal(dict(headers), source)}" if headers else ""


def code_for_publish(
    subject: str, payload: Any, *, encoding: str = "msgpack", headers: Mapping[str, str] | None = None
) -> str:
    """The code that publishes ``payload`` on ``subject`` as the Publisher did.

    Args:
        subject: The NATS subject.
        payload: A pydantic model (sent as FastIoT sends it), plain data (for ``msgpack`` and ``json``),
            a ``str`` (``text``) or ``bytes``.
        encoding: ``msgpack`` (FastIoT's wire format), ``json``, ``text`` (UTF-8) or ``bytes``.
        headers: NATS headers to send along.

    The names the code binds never shadow one the notebook uses (see :class:`_Source`).

    Raises:
        CodeGenerationError: An unknown encoding, or a payload that does not fit it.

    Example:
        >>> print(code_for_publish("v1.demo", {"value": 1}, headers={"origin": "notebook"}))
        from fastiot import workbench
        from fastiot.core.serialization import pack
        <BLANKLINE>
        broker = await workbench.connection()
        payload = {"value": 1}
        await broker.publish_raw("v1.demo", pack(payload), headers={"origin": "notebook"})
    """
    source = _Source()
    broker = _connect(source)
    data = _payload_bytes(source, payload, encoding)
    source.add(f"await {broker}.publish_raw({_text(subject)}, {data}{_headers(source, headers)})")
    return source.text()


def code_for_publish_mqtt(topic: str, payload: Any, *, qos: int = 0, retain: bool = False) -> str:
    """The code that publishes ``payload`` to MQTT subscribers on ``topic``, as the Publisher's MQTT mode did.

    Args:
        topic: The MQTT topic.
        payload: Plain data (sent as JSON), a ``str`` (text) or ``bytes``.
        qos: 0 or 1.
        retain: Keep it as the topic's retained message.

    Example:
        >>> print(code_for_publish_mqtt("cmnd/plug_1/POWER", "ON", qos=1))
        from fastiot.mqtt import publish_mqtt
        <BLANKLINE>
        await publish_mqtt("cmnd/plug_1/POWER", "ON", qos=1)
    """
    source = _Source()
    publish = source.need("from fastiot.mqtt import publish_mqtt")
    literal = python_literal(payload, source)
    if isinstance(payload, (dict, list)):
        name = source.var("payload")
        source.add(f"{name} = {literal}")
        literal = name
    options = (f", qos={qos}" if qos else "") + (", retain=True" if retain else "")
    source.add(f"await {publish}({_text(topic)}, {literal}{options})")
    return source.text()


def code_for_request(
    subject: str,
    payload: Any,
    *,
    encoding: str = "msgpack",
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    reply_cls: type[pydantic.BaseModel] | None = None,
) -> str:
    """The code that sends a request and shows the reply decoded, with its round-trip time.

    It requests through the workbench connection (``request_raw``), so no reply in time raises
    :class:`~fastiot.exceptions.RequestTimeoutError` naming the subject and the timeout, and a failed
    service :class:`~fastiot.exceptions.ReplyHandlerError`, as every request of the workbench does.
    Arguments as :func:`code_for_publish`; ``timeout`` is in seconds. The reply decodes as
    ``reply_cls`` (the request model's reply model) if given, else as :func:`fastiot.payloads.decode`
    reads any payload; it is the cell's result, and bound to ``answer`` (or a free name like it).

    Example:
        >>> "response = await broker.request_raw(" in code_for_request("v1.ask", {"n": 2})
        True
    """
    source = _Source()
    broker = _connect(source)
    data = _payload_bytes(source, payload, encoding)
    clock = source.need("import time")
    started, response, answer = source.var("started"), source.var("response"), source.var("answer")
    if reply_cls is not None:
        deserialize = source.need("from fastiot.core.serialization import serialize_from_bin")
        decoded = f"{deserialize}({_class_name(reply_cls, source)}, {response}.data)"
    else:
        decoded = f"{source.need('from fastiot.payloads import decode')}({response}.data).value"
    source.add(
        f"{started} = {clock}.perf_counter()",
        f"{response} = await {broker}.request_raw({_text(subject)}, {data}"
        f"{_headers(source, headers)}, timeout={float(timeout)!r})",
        f'print(f"answered in {{({clock}.perf_counter() - {started}) * 1e3:.1f}} ms")',
        f"{answer} = {decoded}",
        answer,
    )
    return source.text()


def code_for_table(subjects: str | Sequence[str | tuple[str, type | None]], **options: Any) -> str:
    """The code that opens a live MessageTable of ``subjects`` (``options`` as its keyword arguments).

    ``subjects``: a pattern, or a list of patterns and ``(pattern, model)`` pairs (a capture's
    ``targets``); a pattern with a model becomes a ``Subject`` of it.

    Example:
        >>> code_for_table("v1.>", max_rows=1000).splitlines()[-2]
        'table = MessageTable("v1.>", max_rows=1000)'
    """
    source = _Source()
    cls = source.need("from fastiot_widgets import MessageTable")
    if isinstance(subjects, str):
        targets = _text(subjects)
    else:
        items = [_subject(source, *(s if isinstance(s, tuple) else (s, None))) for s in subjects]
        targets = items[0] if len(items) == 1 else "[" + ", ".join(items) + "]"
    args = f"{targets}{_options(source, options)}"
    table = source.var("table")
    source.add(f"{table} = {cls}({args})", table)
    return source.text()


def _subject(source: _Source, pattern: str, model: type | None) -> str:
    """A pattern's literal, or ``Subject(name=..., msg_cls=Model)`` if its payloads decode to a model."""
    if model is None:
        return _text(pattern)
    subject = source.need("from fastiot.core.data_models import Subject")
    return f"{subject}(name={_text(pattern)}, msg_cls={_class_name(model, source)})"


def code_for_capture(subjects: str | Sequence[str], *, max_rows: int | None = None, wait_for: int = 0) -> str:
    """The code that captures ``subjects`` into a DataFrame (waiting for ``wait_for`` messages first).

    Example:
        >>> code_for_capture("v1.thing.>", max_rows=500).splitlines()[2]
        'capture = await MessageCapture("v1.thing.>", max_rows=500).start()'
    """
    source = _Source()
    cls = source.need("from fastiot.capture import MessageCapture")
    rows = f", max_rows={int(max_rows)}" if max_rows is not None else ""
    capture = source.var("capture")
    source.add(f"{capture} = await {cls}({_patterns(subjects)}{rows}).start()")
    if wait_for > 0:
        source.add(f"await {capture}.wait_for({int(wait_for)}, timeout=30)")
    source.add(f"{capture}.to_dataframe()")
    return source.text()


def code_for_plot(
    subjects: str | Sequence[str],
    fields: str | Sequence[str] = "value",
    *,
    window: dt.timedelta | float | None = None,
) -> str:
    """The code that opens a LivePlot of ``fields`` of ``subjects`` over the last ``window``.

    Example:
        >>> code_for_plot(["v1.a", "v1.b"], "value", window=60).splitlines()[-2]
        'plot = LivePlot(["v1.a", "v1.b"], fields="value", window=datetime.timedelta(seconds=60.0))'
    """
    source = _Source()
    cls = source.need("from fastiot_widgets import LivePlot")
    args = f"{_patterns(subjects)}, fields={_patterns(fields)}"
    if window is not None:
        seconds = window.total_seconds() if isinstance(window, dt.timedelta) else float(window)
        args += f", window={python_literal(dt.timedelta(seconds=seconds), source)}"
    plot = source.var("plot")
    source.add(f"{plot} = {cls}({args})", plot)
    return source.text()


def code_for_record(name: str, pattern: str) -> str:
    """The code that records ``pattern`` into the recording ``name`` (JetStream, see fastiot.history).

    Example:
        >>> code_for_record("run1", "v1.thing.>").splitlines()[-1]
        'recording = await Recording.start("run1", "v1.thing.>")'
    """
    source = _Source()
    cls = source.need("from fastiot.history import Recording")
    recording = source.var("recording")
    source.add(f"{recording} = await {cls}.start({_text(name)}, {_text(pattern)})")
    return source.text()


def code_for_browser(pattern: str = ">") -> str:
    """The code that opens a SubjectBrowser on ``pattern``.

    Example:
        >>> code_for_browser("v1.>").splitlines()[-2]
        'browser = SubjectBrowser("v1.>")'
    """
    source = _Source()
    cls = source.need("from fastiot_widgets import SubjectBrowser")
    browser = source.var("browser")
    source.add(f"{browser} = {cls}({_text(pattern)})", browser)
    return source.text()
