"""Key conversion for configuration files: ``my-key`` in YAML becomes the field name ``my_key``.

Example:
    >>> from fastiot.util.case_conversions import kebab_case_to_snake_case
    >>> config = {"broker-url": "nats://x", "per-sensor": [{"max-rate": 5}]}
    >>> kebab_case_to_snake_case(config)
    >>> config
    {'broker_url': 'nats://x', 'per_sensor': [{'max_rate': 5}]}
"""

from __future__ import annotations

from typing import Any

__all__ = ["kebab_case_to_snake_case"]


def kebab_case_to_snake_case(d: dict[Any, Any]) -> None:
    """Rename the keys of ``d``, and of the dicts nested in it (in lists too), from ``a-b`` to ``a_b``.

    Changes ``d`` in place, as FastIoT's function does. Keys that are not strings stay as they are.
    """
    for key in list(d):
        value = d[key]
        if isinstance(value, dict):
            kebab_case_to_snake_case(value)
        elif isinstance(value, list):
            _kebab_case_to_snake_case_for_list(value)
        if isinstance(key, str) and "-" in key:
            d[key.replace("-", "_")] = d.pop(key)


def _kebab_case_to_snake_case_for_list(items: list[Any]) -> None:
    for item in items:
        if isinstance(item, dict):
            kebab_case_to_snake_case(item)
        elif isinstance(item, list):
            _kebab_case_to_snake_case_for_list(item)
