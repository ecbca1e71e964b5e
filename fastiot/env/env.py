"""FastIoT's ``fastiot.env.env``: the ready-made settings readers, under FastIoT's module path.

The objects are the ones in :mod:`fastiot.env`; this module only gives them the path FastIoT's code
imports them from. FastIoT's database readers (``env_mongodb``, ``env_mariadb``, ...) are not here:
the workbench ships no database clients.

Example:
    >>> from fastiot.env.env import env_basic, env_broker
    >>> env_basic.log_dir  # doctest: +SKIP
    '/var/fastiot/logs'
"""

from __future__ import annotations

from fastiot.env import BasicEnv, BrokerEnv, env_basic, env_broker

__all__ = ["BasicEnv", "BrokerEnv", "env_basic", "env_broker"]
