"""Payload values as text, whatever their depth: :func:`to_text` and :func:`limit_depth`.

msgpack nests up to 1024 levels; Python's reprs, pandas' exports and JSON encoders recurse and fail
on such values long before. Everything here walks without recursion, and :func:`limit_depth` turns
what is nested deeper than :data:`DEFAULT_MAX_DEPTH` into text, so views and exports stay safe.

Example:
    >>> to_text({"a": [1, 2.5, None], "t": "x"})
    '{"a": [1, 2.5, null], "t": "x"}'
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pydantic

__all__ = ["DEFAULT_MAX_DEPTH", "container", "fields", "limit_depth", "to_text"]

DEFAULT_MAX_DEPTH = 32
"""Containers nested deeper than this are kept as serialized text (:func:`limit_depth`): exports,
reprs and views of deeper values would exhaust Python's stack (msgpack nests up to 1024 levels)."""

_END: Any = object()


def fields(model: pydantic.BaseModel) -> dict[str, Any]:
    """A model's field values (extra fields included) as a dict."""
    values = model.__dict__
    extra = model.__pydantic_extra__
    return {**values, **extra} if extra else values


def container(value: Any) -> Any:
    """Dicts and lists as they are, models as their fields, tuples as lists; anything else None."""
    t = type(value)
    if t is dict or t is list:
        return value
    if t is tuple:
        return list(value)
    if isinstance(value, pydantic.BaseModel):
        return fields(value)
    if isinstance(value, Mapping):
        return dict(value)
    return None


def _too_deep(value: Any, max_depth: int) -> bool:
    """Whether containers in ``value`` nest deeper than ``max_depth`` (without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        t = type(item)
        if t is dict:
            children: Any = item.values()
        elif t is list or t is tuple:
            children = item
        else:
            continue
        if depth >= max_depth:
            return True
        for child in children:
            ct = type(child)
            if ct is dict or ct is list or ct is tuple:
                stack.append((child, depth + 1))
    return False


def limit_depth(value: Any, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """``value`` with every container nested deeper than ``max_depth`` replaced by its text.

    The same object comes back when nothing is that deep (the common case, checked without recursion).

    Example:
        >>> limit_depth([[[1]]], max_depth=2)
        [['[1]']]
    """
    t = type(value)
    if t is not dict and t is not list and t is not tuple:
        return value
    if not _too_deep(value, max_depth):
        return value
    return _cut(value, max_depth)


def _cut(value: Any, depth_left: int) -> Any:
    t = type(value)
    if t is not dict and t is not list and t is not tuple:
        return value
    if depth_left <= 0:
        return to_text(value)
    if t is dict:
        return {k: _cut(v, depth_left - 1) for k, v in value.items()}
    return t(_cut(v, depth_left - 1) for v in value)


def _leaf_text(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return json.dumps(value.isoformat())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return json.dumps(bytes(value).hex())
    return json.dumps(str(value), ensure_ascii=False)


def to_text(value: Any, max_depth: int | None = None, max_chars: int | None = None) -> str:
    """A value as readable JSON-like text, however deeply it nests (no recursion).

    Text stays as it is, datetimes become ISO 8601, bytes hex, models their fields. Containers
    deeper than ``max_depth`` are shown as ``[…]`` / ``{…}``; ``max_chars`` cuts the text with ``…``.

    Example:
        >>> to_text({"a": [1, 2.5, None], "t": "x"})
        '{"a": [1, 2.5, null], "t": "x"}'
    """
    if isinstance(value, str):
        text = value
    elif isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        text = value.isoformat()
    elif isinstance(value, (bytes, bytearray, memoryview)):
        text = bytes(value).hex()
    else:
        text = _serialize(value, max_depth, max_chars)
    if max_chars is not None and len(text) > max_chars:
        return text[: max(0, max_chars - 1)] + "…"
    return text


def _serialize(value: Any, max_depth: int | None, max_chars: int | None) -> str:
    parts: list[str] = []
    size = 0
    stack: list[tuple[Iterator[Any], bool]] = []
    first = True

    def open_value(item: Any) -> None:
        nonlocal size, first
        found = container(item)
        if found is None:
            text = _leaf_text(item)
        elif max_depth is not None and len(stack) >= max_depth:
            text = "{…}" if isinstance(found, dict) else "[…]"
        else:
            is_dict = isinstance(found, dict)
            text = "{" if is_dict else "["
            stack.append((iter(found.items()) if is_dict else iter(found), is_dict))
            first = True
        parts.append(text)
        size += len(text)

    open_value(value)
    while stack:
        if max_chars is not None and size > max_chars:
            break
        iterator, is_dict = stack[-1]
        item = next(iterator, _END)
        if item is _END:
            parts.append("}" if is_dict else "]")
            size += 1
            stack.pop()
            first = False
            continue
        if not first:
            parts.append(", ")
            size += 2
        first = False
        if is_dict:
            key = item[0] if isinstance(item[0], str) else str(item[0])
            text = json.dumps(key, ensure_ascii=False) + ": "
            parts.append(text)
            size += len(text)
            open_value(item[1])
        else:
            open_value(item)
    return "".join(parts)
