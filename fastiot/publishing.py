"""Free-form messages, what was sent, and templates in a file: the headless side of the Publisher.

A :class:`Draft` is a message as a person types it: a subject, a payload as text in one of
:data:`ENCODINGS` (JSON, UTF-8 text, msgpack written as JSON, or hex bytes) and NATS headers.
:class:`MessageHistory` keeps the last messages sent (bounded) so each can be sent again.
:class:`TemplateStore` keeps named drafts in a JSON file beside the notebook
(``fastiot-templates.json`` in the current directory), bounded in count and size; a file it cannot
read raises :class:`~fastiot.exceptions.TemplateFileError` saying which file and what to do.

Example:
    >>> from fastiot.publishing import Draft
    >>> Draft("v1.setpoint", '{"target": 21.5}', encoding="json").encode()
    b'{"target": 21.5}'
    >>> parse_headers("origin: notebook")
    {'origin': 'notebook'}
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastiot.core.serialization import pack
from fastiot.core.subject_helper import check_subject
from fastiot.exceptions import FormError, InvalidSubjectError, TemplateFileError

__all__ = [
    "DEFAULT_HISTORY",
    "DEFAULT_TEMPLATES_FILE",
    "ENCODINGS",
    "MAX_TEMPLATES",
    "MAX_TEMPLATES_FILE_BYTES",
    "Draft",
    "MessageHistory",
    "SentMessage",
    "Template",
    "TemplateStore",
    "format_headers",
    "parse_headers",
    "subject_problem",
]

ENCODINGS = ("json", "text", "msgpack", "hex")
"""How a draft's payload text becomes bytes: JSON as typed (normalised), UTF-8 text, msgpack made from
JSON (FastIoT's wire format), or bytes written in hex."""
DEFAULT_HISTORY = 50
DEFAULT_TEMPLATES_FILE = "fastiot-templates.json"
MAX_TEMPLATES = 200
MAX_TEMPLATES_FILE_BYTES = 1_000_000
MODES = ("publish", "request", "mqtt")
_HEADER_NAME = re.compile(r"^[!#-9;-~]+$")  # printable ASCII without ':' and spaces


def subject_problem(subject: str) -> str | None:
    """What is wrong with ``subject`` as the subject of one message, or ``None``.

    The text of :func:`fastiot.core.subject_helper.check_subject`'s error, for a form to show.

    Example:
        >>> subject_problem("v1.thing.>")
        "'v1.thing.>' is not a NATS subject: '>' is a wildcard; a message goes to one concrete subject; \
write tokens joined by dots, e.g. 'v1.thing.press_1'"
    """
    if not subject:
        return "give the subject to send on, e.g. v1.my_model"
    try:
        check_subject(subject, wildcards=False)
    except InvalidSubjectError as e:
        return str(e)
    return None


def parse_headers(text: str) -> dict[str, str]:
    """NATS headers from lines ``Name: value`` (or a JSON object of strings); empty text gives none.

    Raises:
        FormError: A line without ``:``, a name with spaces or control characters, or a value with a
            line break; ``errors["headers"]`` says which and how to write it.
    """
    text = text.strip()
    if not text:
        return {}
    if text.startswith(("{", "[")):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as e:
            raise FormError(
                {"headers": f"not a JSON object ({e.msg}); or write one 'Name: value' a line"}
            ) from None
        if not isinstance(loaded, dict):
            raise FormError({"headers": "a JSON object of strings, or one 'Name: value' a line"})
        pairs = [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in loaded.items()]
    else:
        pairs = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            name, colon, value = line.partition(":")
            if not colon:
                raise FormError({"headers": f"line {number} {line!r} has no ':'; write 'Name: value'"})
            pairs.append((name.strip(), value.strip()))
    headers: dict[str, str] = {}
    for name, value in pairs:
        if not _HEADER_NAME.match(name):
            raise FormError(
                {"headers": f"{name!r} is not a header name; use letters, digits and '-', e.g. Trace-Id"}
            )
        if "\r" in value or "\n" in value:
            raise FormError({"headers": f"the value of {name} has a line break; headers are one line"})
        headers[name] = value
    return headers


def format_headers(headers: Mapping[str, str] | None) -> str:
    """``headers`` as the lines :func:`parse_headers` reads."""
    return "\n".join(f"{name}: {value}" for name, value in (headers or {}).items())


@dataclass(frozen=True)
class Draft:
    """A free-form message as typed: subject, payload text, its encoding, headers, publish or request.

    Example:
        >>> Draft("v1.raw", "21.5", encoding="text").encode()
        b'21.5'
    """

    subject: str
    payload: str = ""
    encoding: str = "json"
    headers: dict[str, str] = field(default_factory=dict)
    mode: str = "publish"

    def value(self) -> Any:
        """The payload as data: parsed JSON for ``json`` / ``msgpack``, text, or bytes for ``hex``.

        Raises:
            FormError: The payload does not fit its encoding (``errors["payload"]`` says how to fix it).
        """
        if self.encoding not in ENCODINGS:
            raise FormError({"encoding": f"one of {', '.join(ENCODINGS)}, not {self.encoding!r}"})
        if self.encoding == "text":
            return self.payload
        if self.encoding == "hex":
            try:
                return bytes.fromhex(self.payload)
            except ValueError:
                raise FormError(
                    {"payload": "not hex bytes; write pairs of hex digits, spaces allowed, e.g. 01 ff 7a"}
                ) from None
        try:
            return json.loads(self.payload or "null")
        except json.JSONDecodeError as e:
            raise FormError(
                {
                    "payload": f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); write "
                    f'strings in double quotes, e.g. {{"state": "on", "value": 21.5}}, or choose text'
                }
            ) from None

    def encode(self) -> bytes:
        """The bytes sent: JSON re-written by ``json.dumps``, UTF-8 text, msgpack, or the hex bytes.

        Raises:
            FormError: The payload does not fit its encoding.
        """
        value = self.value()
        if self.encoding == "json":
            return json.dumps(value).encode()
        if self.encoding == "msgpack":
            return pack(value)
        if self.encoding == "text":
            return str(value).encode()
        return bytes(value)

    def code_payload(self) -> tuple[Any, str]:
        """The payload and encoding name as ``fastiot_widgets._code`` writes them (``hex`` is ``bytes``)."""
        return self.value(), "bytes" if self.encoding == "hex" else self.encoding


@dataclass(frozen=True)
class SentMessage:
    """One message the Publisher sent: what, when, and what came of it."""

    at: dt.datetime
    mode: str
    subject: str
    data: bytes
    headers: dict[str, str]
    draft: Draft | None = None
    """The free-form draft it came from (None for a model form)."""
    inputs: dict[str, Any] | None = None
    """The model form's inputs it came from (None for a free-form message)."""
    outcome: str = ""

    def describe(self) -> str:
        """One line: time, publish or request, subject, size, outcome."""
        size = f"{len(self.data):,} B"
        text = f"{self.at.astimezone():%H:%M:%S} {self.mode} {self.subject} ({size})"
        return f"{text} {self.outcome}" if self.outcome else text


class MessageHistory:
    """The last ``max_entries`` messages sent, newest first; older ones are dropped and counted.

    Args:
        max_entries: How many messages it keeps (at least 1).

    Raises:
        ValueError: ``max_entries`` is less than 1.

    Example:
        >>> history = MessageHistory(max_entries=2)
        >>> len(history), history.dropped
        (0, 0)
    """

    def __init__(self, max_entries: int = DEFAULT_HISTORY) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._entries: collections.deque[SentMessage] = collections.deque(maxlen=max_entries)
        self.dropped: int = 0

    def add(self, entry: SentMessage) -> None:
        """Keep ``entry`` as the newest message (the oldest goes when the history is full)."""
        if len(self._entries) == self._entries.maxlen:
            self.dropped += 1
        self._entries.appendleft(entry)

    def __getitem__(self, index: int) -> SentMessage:
        return self._entries[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[SentMessage]:
        return iter(self._entries)

    def clear(self) -> None:
        """Forget every message."""
        self._entries.clear()


@dataclass(frozen=True)
class Template:
    """A named message to send again later: a free-form draft, or a model form's inputs."""

    name: str
    subject: str
    mode: str = "publish"
    encoding: str = "json"
    payload: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    model: str = ""
    """``module.Class`` of the model form it was saved from; '' for a free-form draft."""
    inputs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_draft(cls, name: str, draft: Draft) -> Template:
        """A template named ``name`` of a free-form draft."""
        return cls(name, draft.subject, draft.mode, draft.encoding, draft.payload, dict(draft.headers))

    def draft(self) -> Draft:
        """The template as a draft to edit and send."""
        return Draft(self.subject, self.payload, self.encoding, dict(self.headers), self.mode)


class TemplateStore:
    """Named templates in a JSON file, read on every call (another kernel may have changed it).

    Args:
        path: The file; default ``fastiot-templates.json`` in the current directory (the notebook's).
        max_templates: The most templates the file may hold.
        max_bytes: The largest file it reads or writes.

    Example:
        >>> store = TemplateStore("/tmp/demo-templates.json")   # doctest: +SKIP
        >>> store.save(Template("heat", "v1.setpoint", payload='{"target": 80}'))  # doctest: +SKIP
        >>> store.load()["heat"].subject                         # doctest: +SKIP
        'v1.setpoint'
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_templates: int = MAX_TEMPLATES,
        max_bytes: int = MAX_TEMPLATES_FILE_BYTES,
    ) -> None:
        self.path: Path = Path(path) if path is not None else Path.cwd() / DEFAULT_TEMPLATES_FILE
        self.max_templates: int = max_templates
        self.max_bytes: int = max_bytes

    def _bad(self, problem: str) -> TemplateFileError:
        return TemplateFileError(
            f"the templates file {self.path} {problem}; fix it, or rename it to start a new one",
            str(self.path),
        )

    def load(self) -> dict[str, Template]:
        """Every template by name; none if the file does not exist yet.

        Raises:
            TemplateFileError: The file is too big, not JSON, or not a list of templates.
        """
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return {}
        if size > self.max_bytes:
            raise self._bad(f"is {size:,} bytes, more than the {self.max_bytes:,} it may have")
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            raise self._bad(f"cannot be read ({e})") from e
        except json.JSONDecodeError as e:
            raise self._bad(f"is not JSON ({e.msg} at line {e.lineno})") from e
        entries = document.get("templates") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise self._bad('is not a fastiot templates file ({"templates": [...]})')
        templates: dict[str, Template] = {}
        known = set(Template.__dataclass_fields__)
        for number, entry in enumerate(entries, 1):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise self._bad(f"has an entry #{number} without a name")
            try:
                template = Template(**{k: v for k, v in entry.items() if k in known})
            except TypeError as e:
                raise self._bad(f"has an unreadable entry {entry['name']!r} ({e})") from e
            if template.mode not in MODES or template.encoding not in ENCODINGS:
                raise self._bad(f"has an entry {template.name!r} with an unknown mode or encoding")
            templates[template.name] = template
        if len(templates) > self.max_templates:
            raise self._bad(
                f"holds {len(templates):,} templates, more than the {self.max_templates:,} allowed"
            )
        return templates

    def save(self, template: Template) -> None:
        """Add ``template``, or replace the one of its name.

        Raises:
            TemplateFileError: The file is unreadable, or would hold too many templates or bytes.
            ValueError: The template has no name.
        """
        if not template.name.strip():
            raise ValueError("give the template a name")
        templates = self.load()
        templates[template.name] = template
        if len(templates) > self.max_templates:
            raise TemplateFileError(
                f"{self.path} holds {self.max_templates:,} templates already, the most it may; delete "
                "some first",
                str(self.path),
            )
        self._write(templates)

    def delete(self, name: str) -> bool:
        """Remove the template ``name``; whether there was one."""
        templates = self.load()
        if templates.pop(name, None) is None:
            return False
        self._write(templates)
        return True

    def _write(self, templates: dict[str, Template]) -> None:
        text = json.dumps({"templates": [asdict(t) for t in templates.values()]}, indent=2) + "\n"
        if len(text.encode()) > self.max_bytes:
            raise TemplateFileError(
                f"the templates would take more than {self.max_bytes:,} bytes in {self.path}; delete some "
                "or make payloads smaller",
                str(self.path),
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside it and renamed: a crash never leaves half a file.
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
