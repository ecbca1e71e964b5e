"""Example messages built from a model's JSON schema: what a catalogue shows and a generated test sends.

Example:
    >>> from fastiot.msg.thing import Thing
    >>> from fastiot.services.examples import example_message
    >>> example_message(Thing).name
    'example'
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["example_message", "example_payload"]

_EXAMPLE_TIME = "2024-01-01T00:00:00Z"
# Deep or self-referencing models stop here: an optional field left out, a list left empty.
_MAX_DEPTH = 8


def example_payload(schema: dict[str, Any], definitions: dict[str, Any] | None = None) -> Any:
    """A JSON value that matches ``schema``: its first example or default, else one made up per type.

    Args:
        schema: A JSON schema as pydantic writes it (``model_json_schema()``).
        definitions: The schemas its ``$ref`` point to, by name (default: the schema's own ``$defs``).

    Returns:
        A JSON-compatible value (dicts, lists, strings, numbers, booleans, None).

    Example:
        >>> example_payload({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
        {'n': 0}
    """
    defs = definitions if definitions is not None else schema.get("$defs", {})
    return _example(schema, defs, 0)


def example_message(model: type[BaseModel]) -> BaseModel:
    """A valid instance of ``model`` made from its JSON schema (see :func:`example_payload`).

    Args:
        model: A pydantic model class, e.g. a :class:`~fastiot.core.data_models.FastIoTData` subclass.

    Returns:
        ``model.model_validate(example_payload(model.model_json_schema()))``.

    Example:
        >>> from fastiot.msg.thing import Thing
        >>> example_message(Thing).value
        1.0
    """
    return model.model_validate(example_payload(model.model_json_schema()))


def _example(schema: Any, defs: dict[str, Any], depth: int) -> Any:
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return _example(defs.get(name, {}), defs, depth + 1)
    for key in ("examples", "default", "const", "enum"):
        if key in schema:
            value = schema[key]
            if key in ("examples", "enum"):
                if isinstance(value, list) and value:
                    return value[0]
                continue
            return value
    for key in ("anyOf", "oneOf"):
        if key in schema:
            # An Optional[X] field: X's example reads better than None.
            options = [o for o in schema[key] if not (isinstance(o, dict) and o.get("type") == "null")]
            return _example(options[0], defs, depth) if options else None
    if schema.get("allOf"):
        return _example(schema["allOf"][0], defs, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        return _object(schema, defs, depth)
    if kind == "array":
        if depth >= _MAX_DEPTH or schema.get("maxItems") == 0:
            return []
        if "prefixItems" in schema:
            return [_example(item, defs, depth + 1) for item in schema["prefixItems"]]
        count = max(1, int(schema.get("minItems", 1)))
        return [_example(schema.get("items", {}), defs, depth + 1) for _ in range(count)]
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return _EXAMPLE_TIME
        if fmt == "date":
            return _EXAMPLE_TIME[:10]
        if fmt == "binary":
            return ""
        return "example"
    if kind == "integer":
        return int(schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1))
    if kind == "number":
        return float(schema.get("minimum", 0.0))
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return 1.0  # Any, e.g. a Thing's value: most often a measurement


def _object(schema: dict[str, Any], defs: dict[str, Any], depth: int) -> dict[str, Any]:
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    value: dict[str, Any] = {}
    for name, prop in properties.items():
        if name in required or depth < _MAX_DEPTH:
            value[name] = _example(prop, defs, depth + 1)
    extra = schema.get("additionalProperties")
    if not properties and isinstance(extra, dict) and depth < _MAX_DEPTH:
        value["key"] = _example(extra, defs, depth + 1)
    return value
