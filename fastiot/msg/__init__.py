"""Ready-made message models."""

from __future__ import annotations

from fastiot.msg.thing import Thing

__all__ = ["Thing"]
