"""Dicts to models: FastIoT's ``parse_object`` and ``parse_object_list``.

Example:
    >>> from fastiot.msg.thing import Thing
    >>> from fastiot.util.object_helper import parse_object
    >>> parse_object({"machine": "press_1", "name": "temperature", "value": 71.3}, Thing).value
    71.3
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["parse_object", "parse_object_list"]

_M = TypeVar("_M", bound=BaseModel)

_logger = logging.getLogger("fastiot.util.object_helper")


def parse_object(dic: dict[str, Any], data_model: type[_M]) -> _M | None:
    """``data_model`` built from ``dic``: any pydantic model, e.g. a ``FastIoTData`` subclass.

    As in FastIoT, a ``data_model`` that is no pydantic model gives ``None`` and an error in the log.

    Raises:
        pydantic.ValidationError: ``dic`` does not fit ``data_model``.

    Example:
        >>> from pydantic import BaseModel
        >>> class Point(BaseModel):
        ...     x: float
        ...     y: float
        >>> parse_object({"x": 1, "y": 2}, Point)
        Point(x=1.0, y=2.0)
    """
    if isinstance(data_model, type) and issubclass(data_model, BaseModel):
        return data_model.model_validate(dic)
    _logger.error(
        "parse_object(..., %r): not a data model; pass a class that inherits FastIoTData or "
        "pydantic's BaseModel",
        data_model,
    )
    return None


def parse_object_list(dict_list: list[dict[str, Any]], data_model: type[_M]) -> list[_M | None]:
    """:func:`parse_object` for each dict of ``dict_list``, in order.

    Example:
        >>> from fastiot.msg.thing import Thing
        >>> dicts = [{"machine": "m", "name": f"s{i}", "value": i} for i in range(2)]
        >>> things = parse_object_list(dicts, Thing)
        >>> [thing.name for thing in things]
        ['s0', 's1']
    """
    return [parse_object(dic, data_model) for dic in dict_list]
