"""AsyncAPI 3.0 documents of FastIoT services: their subjects, operations and msgpack-encoded messages.

Channels are the subjects (a ``*`` or ``>`` becomes a parameter of the channel's address); a
``@subscribe`` is a ``receive`` operation, a ``@reply`` a ``receive`` with a ``reply``, and every subject
in a service's :attr:`~fastiot.core.service.FastIoTService.publishes` a ``send``. Messages carry the JSON
schemas of their pydantic models, with ``contentType: application/msgpack`` (what travels on the wire).

Example:
    >>> from fastiot.demo import PlantStatusService
    >>> from fastiot.services import asyncapi
    >>> doc = asyncapi(PlantStatusService, title="Plant")
    >>> doc.to_dict()["asyncapi"]
    '3.0.0'
    >>> sorted(doc.to_dict()["channels"])
    ['v1_plant_status_request', 'v1_plant_status_request_reply']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from fastiot.core.data_models import ReplySubject, Subject
from fastiot.core.service import FastIoTService
from fastiot.core.subject_helper import WILDCARD_SAME_LEVEL
from fastiot.exceptions import ServiceExportError
from fastiot.services.examples import example_payload

__all__ = ["ASYNCAPI_VERSION", "CONTENT_TYPE", "AsyncAPIDocument", "asyncapi"]

ASYNCAPI_VERSION = "3.0.0"
CONTENT_TYPE = "application/msgpack"
"""How FastIoT encodes every message body."""
_REF_TEMPLATE = "#/components/schemas/{model}"
_KEY = re.compile(r"[^A-Za-z0-9_.\-]")


class AsyncAPIDocument:
    """An AsyncAPI 3.0 document; in a notebook it shows as a catalogue of channels, messages and schemas.

    Args:
        document: The document as JSON-compatible dicts and lists.

    Example:
        >>> doc = asyncapi(PlantStatusService)  # doctest: +SKIP
        >>> print(doc.to_yaml())                # doctest: +SKIP
    """

    def __init__(self, document: dict[str, Any]) -> None:
        """Wrap ``document`` (kept as it is, not copied)."""
        self.document: dict[str, Any] = document

    def to_dict(self) -> dict[str, Any]:
        """The document as JSON-compatible dicts and lists (the object itself, not a copy)."""
        return self.document

    def to_json(self, indent: int | None = 2) -> str:
        """The document as JSON text."""
        return json.dumps(self.document, indent=indent)

    def to_yaml(self) -> str:
        """The document as YAML text (the order of its keys kept)."""
        import yaml

        return str(yaml.safe_dump(self.document, sort_keys=False, allow_unicode=True))

    def __repr__(self) -> str:
        """Its title and how many channels and operations it has."""
        info = self.document.get("info", {})
        return (
            f"AsyncAPIDocument({info.get('title')!r}, {len(self.document.get('channels', {}))} channels, "
            f"{len(self.document.get('operations', {}))} operations)"
        )

    def _repr_markdown_(self) -> str:
        """The catalogue a notebook shows (:func:`catalogue_markdown`)."""
        return catalogue_markdown(self.document)


def asyncapi(
    *service_classes: type[FastIoTService],
    title: str = "FastIoT services",
    version: str = "1.0.0",
    servers: Mapping[str, str] | Iterable[str] | None = None,
    description: str = "",
) -> AsyncAPIDocument:
    """The AsyncAPI 3.0 document of these services.

    Args:
        service_classes: The service classes (not instances).
        title: The document's title.
        version: The version of the API described.
        servers: NATS servers: ``{"production": "nats://plant:4222"}`` or a list of URLs (named
            ``server1``, ...). None: none listed.
        description: The document's description (default: the services' first docstring lines).

    Returns:
        The document; ``.to_dict()``, ``.to_json()``, ``.to_yaml()``, and a catalogue in a notebook.

    Raises:
        ServiceExportError: Something given is not a FastIoTService subclass.

    Example:
        >>> from fastiot.demo import PlantStatusService
        >>> doc = asyncapi(PlantStatusService, servers=["nats://localhost:4222"])
        >>> doc.to_dict()["servers"]["server1"]["host"]
        'localhost:4222'
    """
    builder = _Builder()
    for cls in service_classes:
        if not (isinstance(cls, type) and issubclass(cls, FastIoTService)):
            raise ServiceExportError(
                f"asyncapi() takes FastIoTService subclasses (the classes, without ()), got {cls!r}"
            )
        builder.add_service(cls)
    lines = [f"**{cls.__name__}**: {_first_line(cls.__doc__)}".rstrip(": ") for cls in service_classes]
    doc: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": description or "\n\n".join(lines) or "FastIoT services",
        },
    }
    if servers:
        doc["servers"] = _servers(servers)
    doc["defaultContentType"] = CONTENT_TYPE
    doc["channels"] = builder.channels
    doc["operations"] = builder.operations
    doc["components"] = {"messages": builder.messages, "schemas": builder.schemas}
    return AsyncAPIDocument(doc)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0].strip()


def _servers(servers: Mapping[str, str] | Iterable[str]) -> dict[str, Any]:
    named = (
        dict(servers) if isinstance(servers, Mapping) else {f"server{i}": u for i, u in enumerate(servers, 1)}
    )
    result: dict[str, Any] = {}
    for name, url in named.items():
        scheme, _, host = str(url).rpartition("://")
        protocol = scheme or "nats"
        result[_KEY.sub("_", name)] = {"host": host, "protocol": protocol}
    return result


def _channel_id(subject: str) -> str:
    return _KEY.sub("_", subject.replace("*", "any").replace(">", "all").replace(".", "_"))


def _address(subject: str) -> tuple[str, dict[str, Any]]:
    """The channel address of ``subject`` with one parameter per wildcard, and those parameters."""
    tokens = subject.split(".")
    parameters: dict[str, Any] = {}
    for i, token in enumerate(tokens):
        if token == WILDCARD_SAME_LEVEL:
            name = f"token{i + 1}"
            tokens[i] = "{" + name + "}"
            parameters[name] = {"description": f"Token {i + 1} of the subject (`*`: any one token)."}
        elif token == ">":
            tokens[i] = "{rest}"
            parameters["rest"] = {
                "description": f"Tokens {i + 1} and after (`>`: one or more tokens, dot-separated)."
            }
    return ".".join(tokens), parameters


class _Builder:
    """Collects the channels, operations, messages and schemas of several services."""

    def __init__(self) -> None:
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}

    def add_service(self, cls: type[FastIoTService]) -> None:
        for name in sorted(dir(cls)):
            fn = getattr(cls, name, None)
            subject = getattr(fn, "_fastiot_subject", None)
            if isinstance(subject, Subject):
                self._operation(cls, name, "receive", subject, fn)
            reply_subject = getattr(fn, "_fastiot_reply_subject", None)
            if isinstance(reply_subject, ReplySubject):
                self._operation(cls, name, "receive", reply_subject, fn, reply=True)
        for i, subject in enumerate(cls.publishes):
            if not isinstance(subject, Subject):
                raise ServiceExportError(
                    f"{cls.__name__}.publishes lists Subjects, e.g. (Alarm.get_subject(),); item {i} is "
                    f"{subject!r}"
                )
            self._operation(cls, f"publish_{_channel_id(subject.name)}", "send", subject, None)

    def _operation(
        self,
        cls: type[FastIoTService],
        name: str,
        action: str,
        subject: Subject,
        fn: Any,
        reply: bool = False,
    ) -> None:
        channel_id = self._channel(subject.name, subject.msg_cls)
        message_id = self._message(subject.msg_cls)
        operation: dict[str, Any] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": _first_line(getattr(fn, "__doc__", None))
            or f"{cls.__name__} {'publishes on' if action == 'send' else 'handles'} {subject.name}",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
            "tags": [{"name": cls.__name__}],
        }
        if reply and isinstance(subject, ReplySubject):
            reply_id = f"{channel_id}_reply"
            reply_message = self._message(subject.reply_cls)
            self.channels.setdefault(
                reply_id,
                {
                    "address": None,
                    "description": "The requester's reply inbox (the request's reply subject).",
                    "messages": {reply_message: {"$ref": f"#/components/messages/{reply_message}"}},
                },
            )
            operation["reply"] = {
                "channel": {"$ref": f"#/channels/{reply_id}"},
                "messages": [{"$ref": f"#/channels/{reply_id}/messages/{reply_message}"}],
            }
        self.operations[_KEY.sub("_", f"{cls.__name__}.{name}")] = operation

    def _channel(self, subject: str, msg_cls: Any) -> str:
        channel_id = _channel_id(subject)
        message_id = self._message(msg_cls)
        address, parameters = _address(subject)
        channel = self.channels.setdefault(channel_id, {"address": address, "messages": {}})
        if parameters:
            channel["parameters"] = parameters
        channel["messages"][message_id] = {"$ref": f"#/components/messages/{message_id}"}
        return channel_id

    def _message(self, msg_cls: Any) -> str:
        if not (isinstance(msg_cls, type) and issubclass(msg_cls, BaseModel)):
            name = "AnyMessage"
            self.messages.setdefault(
                name,
                {
                    "name": name,
                    "contentType": CONTENT_TYPE,
                    "summary": "Any msgpack map (the subject is declared with dict).",
                    "payload": {"type": "object"},
                },
            )
            return name
        name = self._schema(msg_cls)
        if name not in self.messages:
            schema = msg_cls.model_json_schema(ref_template=_REF_TEMPLATE)
            message: dict[str, Any] = {
                "name": name,
                "title": msg_cls.__name__,
                "contentType": CONTENT_TYPE,
                "payload": {"$ref": f"#/components/schemas/{name}"},
                "examples": [{"name": "example", "payload": example_payload(schema, self.schemas)}],
            }
            summary = _first_line(msg_cls.__doc__)
            if summary:
                message["summary"] = summary
            self.messages[name] = message
        return name

    def _schema(self, model: type[BaseModel]) -> str:
        """Put ``model``'s JSON schema (and its nested models') into the components; its name there."""
        schema = model.model_json_schema(ref_template=_REF_TEMPLATE)
        for nested, definition in schema.pop("$defs", {}).items():
            self.schemas.setdefault(nested, definition)
        name = _KEY.sub("_", model.__name__)
        self.schemas.setdefault(name, schema)
        return name


def catalogue_markdown(document: Mapping[str, Any]) -> str:
    """A readable catalogue of an AsyncAPI document: channels with their operations, then messages.

    Args:
        document: An AsyncAPI 3.0 document as made by :func:`asyncapi`.

    Returns:
        Markdown: per channel its address, parameters, operations and messages; per message its fields
        (name, type, required, description) and an example.
    """
    info = document.get("info", {})
    out = [f"# {info.get('title', 'AsyncAPI')} {info.get('version', '')}".rstrip(), ""]
    if info.get("description"):
        out += [str(info["description"]), ""]
    for name, server in document.get("servers", {}).items():
        out.append(f"- server **{name}**: `{server.get('protocol')}://{server.get('host')}`")
    out += [
        "",
        f"Every message is `{document.get('defaultContentType', CONTENT_TYPE)}`.",
        "",
        "## Channels",
        "",
    ]
    operations = document.get("operations", {})
    for channel_id, channel in document.get("channels", {}).items():
        if channel.get("address") is None:
            continue  # reply inboxes show with their request
        out.append(f"### `{channel['address']}`")
        for param, spec in channel.get("parameters", {}).items():
            out.append(f"- parameter `{{{param}}}`: {spec.get('description', '')}")
        for op_name, op in operations.items():
            if op["channel"]["$ref"] != f"#/channels/{channel_id}":
                continue
            verb = "publishes" if op["action"] == "send" else "receives"
            line = f"- **{op_name}** {verb} {_message_names(op['messages'])}"
            if "reply" in op:
                line += f", replies {_message_names(op['reply']['messages'])}"
            out.append(line)
        out.append("")
    out += ["## Messages", ""]
    schemas = document.get("components", {}).get("schemas", {})
    for name, message in document.get("components", {}).get("messages", {}).items():
        out.append(f"### {name}")
        if message.get("summary"):
            out.append(str(message["summary"]))
        out.append("")
        ref = message.get("payload", {}).get("$ref", "")
        schema = schemas.get(ref.rsplit("/", 1)[-1], message.get("payload", {}))
        out += _fields_table(schema)
        for example in message.get("examples", []):
            out += ["", "Example:", "", "```json", json.dumps(example.get("payload"), indent=2), "```"]
        out.append("")
    return "\n".join(out)


def _message_names(refs: list[dict[str, str]]) -> str:
    return ", ".join(f"`{ref['$ref'].rsplit('/', 1)[-1]}`" for ref in refs)


def _type_of(schema: Mapping[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_type_of(option) for option in schema[key])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list[{_type_of(schema.get('items', {}))}]"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"dict[str, {_type_of(schema['additionalProperties'])}]"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return str(kind)


def _fields_table(schema: Mapping[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    if not properties:
        return [f"Payload: {_type_of(schema)}"]
    required = set(schema.get("required", ()))
    rows = ["| field | type | required | description |", "|---|---|---|---|"]
    for field, spec in properties.items():
        description = str(spec.get("description", "")).replace("\n", " ").replace("|", "\\|")
        rows.append(
            f"| `{field}` | {_type_of(spec)} | {'yes' if field in required else ''} | {description} |"
        )
    return rows
