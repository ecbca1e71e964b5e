"""A recording's stream configuration.

Built from ``Recording.start``'s arguments, checked before any call to the server, and compared with an
existing stream's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from nats.js.api import StorageType, StreamConfig

from fastiot.exceptions import InvalidRecordingError
from fastiot.history.ranges import parse_duration
from fastiot.history.rolling import recorded_patterns

__all__ = ["MAX_REPLICAS", "differences", "stream_config", "unlimited"]

MAX_REPLICAS = 5  # JetStream's limit
_STORAGE = {"file": StorageType.FILE, "memory": StorageType.MEMORY}


def _limit(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRecordingError(f"{what} must be a positive int or None (no limit), got {value!r}")
    return value


def stream_config(
    name: str,
    patterns: list[str],
    max_age: timedelta | float | str | None,
    max_bytes: int | None,
    max_msgs: int | None,
    storage: str,
    replicas: int,
) -> StreamConfig:
    age: float | None = None
    if max_age is not None:
        try:
            age = parse_duration(max_age).total_seconds()
        except ValueError as e:
            raise InvalidRecordingError(f"max_age: {e}") from None
        if age <= 0:
            raise InvalidRecordingError(f"max_age must be positive, got {max_age!r}")
    if storage not in _STORAGE:
        raise InvalidRecordingError(f"storage must be 'file' or 'memory', got {storage!r}")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= MAX_REPLICAS:
        raise InvalidRecordingError(f"replicas must be an int from 1 to {MAX_REPLICAS}, got {replicas!r}")
    return StreamConfig(
        name=name,
        subjects=patterns,
        max_age=age,
        max_bytes=_limit(max_bytes, "max_bytes"),
        max_msgs=_limit(max_msgs, "max_msgs"),
        storage=_STORAGE[storage],
        num_replicas=replicas,
        # Any replica answers direct gets: the timeline's state at a time is one batch request.
        allow_direct=True,
    )


def unlimited(value: Any) -> Any:
    return None if value in (None, -1, 0) else value


def differences(wanted: StreamConfig, have: StreamConfig) -> list[str]:
    pairs = {
        # A recording copied from the rolling history has its patterns in its source, not its subjects.
        "subjects": (sorted(recorded_patterns(wanted)), sorted(recorded_patterns(have))),
        "max_age": (unlimited(wanted.max_age), unlimited(have.max_age)),
        "max_bytes": (unlimited(wanted.max_bytes), unlimited(have.max_bytes)),
        "max_msgs": (unlimited(wanted.max_msgs), unlimited(have.max_msgs)),
        "storage": (wanted.storage, have.storage),
        "replicas": (wanted.num_replicas or 1, have.num_replicas or 1),
    }
    return [f"{key} {b!r} (asked for {a!r})" for key, (a, b) in pairs.items() if a != b]
