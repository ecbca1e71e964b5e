"""FastIoT's helpers that service authors import, under FastIoT's module paths.

- :mod:`fastiot.util.config_helper`: ``read_config`` and ``FastIoTConfigModel`` read a service's YAML
  configuration from ``FASTIOT_CONFIG_DIR``; :mod:`fastiot.util.read_yaml` is its deprecated older path.
- :mod:`fastiot.util.object_helper`: ``parse_object`` / ``parse_object_list`` turn dicts into models.
- :mod:`fastiot.util.ports`: ``get_local_random_port``.
- :mod:`fastiot.util.case_conversions`: ``kebab_case_to_snake_case`` for configuration keys.

Each is imported from its own module, as in FastIoT, e.g. ``from fastiot.util.ports import
get_local_random_port``.
"""

from __future__ import annotations

__all__: list[str] = []
