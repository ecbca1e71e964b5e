"""fastiot: the FastIoT core API on pydantic v2, and a headless runtime for Jupyter notebooks.

``from fastiot import logging`` gives the fastiot logger (level from ``FASTIOT_LOG_LEVEL``).
"""

from __future__ import annotations

from fastiot.core.logger import setup_logger as _setup_logger

logging = _setup_logger()

__version__ = "0.1.0"
__all__ = ["__version__", "logging"]
