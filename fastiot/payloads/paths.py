"""Paths into decoded payloads (:func:`get_path`, :func:`flatten`) and what changed (:func:`diff`).

A path is keys joined with ``.`` (``sensors.temp.value``), list items by index (``samples.0``), a key
that holds ``.``, ``[``, ``]`` or ``"`` quoted as ``["a.b"]`` (``readings["temp.1"].value``).

Example:
    >>> diff({"a": {"b": 1}, "gone": 0}, {"a": {"b": 2}, "new": [1]})
    [('a.b', 1, 2), ('gone', 0, MISSING), ('new', MISSING, [1])]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pydantic

from fastiot.exceptions import InvalidPathError, PathNotFoundError
from fastiot.payloads.text import DEFAULT_MAX_DEPTH, container, fields, to_text

__all__ = ["MISSING", "diff", "flatten", "get_path", "join_path", "split_path"]

_QUOTE_CHARS = frozenset('.[]"')
VALUE_PATH = "value"
"""The path :func:`flatten` gives a payload that is no mapping (a capture's ``value`` column)."""


class _Missing:
    """The absent side of a :func:`diff` entry (a field that was added or removed)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


def join_path(prefix: str, key: Any) -> str:
    """``prefix`` extended by one key, quoting a key that holds ``.``, ``[``, ``]`` or ``"``.

    Example:
        >>> join_path("readings", "temp.1")
        'readings["temp.1"]'
    """
    name = key if type(key) is str else str(key)
    if not name or not _QUOTE_CHARS.isdisjoint(name):
        return f"{prefix}[{json.dumps(name, ensure_ascii=False)}]"
    return f"{prefix}.{name}" if prefix else name


def split_path(path: str | Sequence[str]) -> list[str]:
    """The keys of a path: ``'a["b.c"].d'`` -> ``['a', 'b.c', 'd']``; a sequence is taken as the keys.

    Raises:
        InvalidPathError: If a quoted key is not closed or not followed by ``.``, ``[`` or the end.
    """
    if not isinstance(path, str):
        return [str(key) for key in path]
    keys: list[str] = []
    i, n = 0, len(path)
    decoder = json.JSONDecoder()
    while i < n:
        if path[i] == "[":
            try:
                key, end = decoder.raw_decode(path, i + 1)
            except ValueError:
                key, end = None, -1
            if not isinstance(key, str) or end >= n or path[end] != "]":
                raise InvalidPathError(
                    f'{path!r}: a quoted key is written ["key.with.dots"], as in \'readings["temp.1"].value\''
                )
            keys.append(key)
            i = end + 1
        else:
            end = i
            while end < n and path[end] not in ".[":
                end += 1
            keys.append(path[i:end])
            i = end
        if i < n and path[i] == ".":
            i += 1
            if i == n:
                raise InvalidPathError(f"{path!r} ends with '.'; remove it or name the next key")
        elif i < n and path[i] != "[":
            raise InvalidPathError(f"{path!r}: expected '.' or '[' after a quoted key at position {i}")
    return keys


def _child(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        if key in node:
            return node[key]
        if key.lstrip("-").isdigit() and int(key) in node:
            return node[int(key)]
        return MISSING
    if key.lstrip("-").isdigit() and -len(node) <= int(key) < len(node):
        return node[int(key)]
    return MISSING


_RAISE: Any = object()


def get_path(value: Any, path: str | Sequence[str], default: Any = _RAISE) -> Any:
    """The field at ``path`` in a decoded payload (dicts, lists by index, models by field name).

    Args:
        value: A decoded payload, e.g. :attr:`Decoded.value`.
        path: ``"a.b"``, ``'readings["temp.1"].value'``, ``"samples.0"``, or a list of keys.
        default: Returned when the path names no field; without it, that raises.

    Raises:
        PathNotFoundError: If the path names no field and no default is given.
        InvalidPathError: If the path is not written as paths are.

    Example:
        >>> get_path({"readings": {"temp.1": {"value": 3}}}, 'readings["temp.1"].value')
        3
    """
    current = value
    keys = split_path(path)
    for depth, key in enumerate(keys):
        node = container(current)
        found = MISSING if node is None else _child(node, key)
        if found is MISSING:
            if default is not _RAISE:
                return default
            where = "the payload" if depth == 0 else repr(_joined(keys[:depth]))
            if isinstance(node, dict):
                names = ", ".join(repr(str(k)) for k in list(node)[:20])
                detail = f"{where} has the fields {names}" if names else f"{where} has no fields"
            elif node is not None:
                detail = f"{where} is a list of {len(node)} items"
            else:
                detail = f"{where} is a {type(current).__name__}, not a mapping or list"
            raise PathNotFoundError(_joined(keys), f"no field {_joined(keys)!r}: {detail}")
        current = found
    return current


def _joined(keys: Sequence[str]) -> str:
    path = ""
    for key in keys:
        path = join_path(path, key)
    return path


def flatten(value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    """A payload as one level of ``path: value``: nested mappings and models become paths.

    Lists stay values. A payload that is no mapping becomes ``{"value": payload}``. Mappings nested
    deeper than ``max_depth`` are kept as text.

    Example:
        >>> flatten({"a": {"b": 1, "c.d": 2}, "e": [1, 2]})
        {'a.b': 1, 'a["c.d"]': 2, 'e': [1, 2]}
    """
    mapping = value if type(value) is dict else container(value)
    if not isinstance(mapping, dict):
        return {VALUE_PATH: value}
    out: dict[str, Any] = {}
    _flatten_into(mapping, "", out, max_depth)
    return out


def _flatten_into(mapping: dict[Any, Any], prefix: str, out: dict[str, Any], depth_left: int) -> None:
    for key, item in mapping.items():
        name = join_path(prefix, key)
        nested = (
            item if type(item) is dict else (fields(item) if isinstance(item, pydantic.BaseModel) else None)
        )
        if nested is None:
            out[name] = item
        elif depth_left <= 1:
            out[name] = to_text(nested)
        else:
            _flatten_into(nested, name, out, depth_left - 1)


def _same(a: Any, b: Any) -> bool:
    if (type(a) is bool) != (type(b) is bool):
        return False
    try:
        if a == b:
            return True
    except RecursionError:
        return to_text(a) == to_text(b)
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


def diff(old: Any, new: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> list[tuple[str, Any, Any]]:
    """What changed from one payload to the next: ``(path, old_value, new_value)`` per field.

    Mappings (and models) are compared key by key, lists item by item; an added field has
    :data:`MISSING` as old value, a removed one as new value. Below ``max_depth`` levels values are
    compared whole. A changed top-level value that is no container has the path ``""``.

    Example:
        >>> diff({"a": {"b": 1}, "gone": 0}, {"a": {"b": 2}, "new": [1]})
        [('a.b', 1, 2), ('gone', 0, MISSING), ('new', MISSING, [1])]
    """
    changes: list[tuple[str, Any, Any]] = []
    _diff_into(old, new, "", changes, max_depth)
    return changes


def _diff_into(old: Any, new: Any, path: str, changes: list[tuple[str, Any, Any]], depth_left: int) -> None:
    a, b = container(old), container(new)
    if depth_left > 0 and a is not None and b is not None and type(a) is type(b):
        if isinstance(a, dict):
            for key, value in a.items():
                name = join_path(path, key)
                if key in b:
                    _diff_into(value, b[key], name, changes, depth_left - 1)
                else:
                    changes.append((name, value, MISSING))
            for key, value in b.items():
                if key not in a:
                    changes.append((join_path(path, key), MISSING, value))
            return
        for i in range(max(len(a), len(b))):
            name = join_path(path, i)
            if i >= len(b):
                changes.append((name, a[i], MISSING))
            elif i >= len(a):
                changes.append((name, MISSING, b[i]))
            else:
                _diff_into(a[i], b[i], name, changes, depth_left - 1)
        return
    if not _same(old, new):
        changes.append((path, old, new))
