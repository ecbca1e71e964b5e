"""Typed decoding: every FastIoTData model defined in the process, found by the subject it publishes on.

``MyModel`` publishes on ``v1.my_model`` and below it (``Thing`` on ``v1.thing.press_1.temp``), so a
message's subject names its model: the longest subject prefix that is a model's subject wins. The map
is rebuilt when a new subclass is defined (e.g. in a notebook cell; the newest definition of a name wins).

Example:
    >>> from fastiot.msg.thing import Thing
    >>> model_for_subject("v1.thing.press_1.temperature") is Thing
    True
"""

from __future__ import annotations

import functools
from typing import Any

import pydantic

from fastiot.core.data_models import (
    FastIoTData,
    FastIoTPublish,
    FastIoTRequest,
    FastIoTResponse,
    model_generation,
)

__all__ = ["model_for_subject", "model_schema", "models"]

_MAX_CACHED_SUBJECTS = 100_000
_BASE_MODELS = (FastIoTData, FastIoTPublish, FastIoTRequest, FastIoTResponse)


class _ModelMap:
    """Subject -> model of every FastIoTData subclass defined in the process, rebuilt when new ones appear."""

    def __init__(self) -> None:
        self.generation = -1
        self.by_subject: dict[str, type[FastIoTData]] = {}
        self.cache: dict[str, type[FastIoTData] | None] = {}

    def refresh(self) -> None:
        generation = model_generation()
        if generation == self.generation:
            return
        by_subject: dict[str, type[FastIoTData]] = {}
        seen: set[type[FastIoTData]] = set()
        stack: list[type[FastIoTData]] = [FastIoTData]
        while stack:
            cls = stack.pop(0)  # breadth first, in definition order: a redefined class comes later and wins
            sub: type[FastIoTData]
            for sub in cls.__subclasses__():
                if sub not in seen:
                    seen.add(sub)
                    stack.append(sub)
            if cls in _BASE_MODELS or issubclass(cls, FastIoTResponse) or "[" in cls.__name__:
                continue  # bases and responses (they go to an inbox) have no subject of their own
            name = _base_subject(cls)
            if name is not None:
                by_subject[name] = cls
        self.by_subject, self.cache, self.generation = by_subject, {}, generation

    def lookup(self, subject: str) -> type[FastIoTData] | None:
        self.refresh()
        cache = self.cache
        try:
            return cache[subject]
        except KeyError:
            pass
        found = None
        # A model publishes on its subject and below it (v1.thing.press_1.temp): the longest prefix wins.
        tokens = subject.split(".")
        for end in range(len(tokens), 1, -1):
            found = self.by_subject.get(".".join(tokens[:end]))
            if found is not None:
                break
        if len(cache) >= _MAX_CACHED_SUBJECTS:
            cache.clear()
        cache[subject] = found
        return found


def _base_subject(cls: type[FastIoTData]) -> str | None:
    """The subject a model publishes on and below (``v1.thing``), or ``None`` if it has none."""
    try:
        return cls._get_subject_name()
    except Exception:
        pass
    try:  # a hierarchical model (e.g. Thing) refuses a subject without a name below its own
        below = cls._get_subject_name(">")
    except Exception:
        return None
    return below[:-2] if below.endswith(".>") else None


_models = _ModelMap()


def model_for_subject(subject: str) -> type[FastIoTData] | None:
    """The FastIoTData model whose messages are published on ``subject``, or ``None``.

    Every subclass of FastIoTData defined in this process counts, including those defined in a
    notebook cell (the newest definition of a name wins). ``MyModel`` publishes on ``v1.my_model``
    and below it.

    Example:
        >>> from fastiot.msg.thing import Thing
        >>> model_for_subject("v1.thing.press_1.temperature") is Thing
        True
    """
    return _models.lookup(subject)


def models() -> dict[str, type]:
    """Every model known by its subject: ``{"v1.thing": Thing, ...}``."""
    _models.refresh()
    return dict(_models.by_subject)


@functools.lru_cache(maxsize=256)
def _schema_of(model: type[pydantic.BaseModel]) -> dict[str, Any] | None:
    try:
        return model.model_json_schema()
    except Exception:  # a field type without a JSON schema
        return None


def model_schema(subject: str) -> dict[str, Any] | None:
    """The JSON schema of the model of ``subject`` (see :func:`model_for_subject`), or ``None``."""
    model = model_for_subject(subject)
    return None if model is None else _schema_of(model)
