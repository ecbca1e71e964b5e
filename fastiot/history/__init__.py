"""History: record subjects into JetStream, browse, export, replay and scrub through recordings.

It records subjects into JetStream, browses streams and key-value buckets, exports and replays them,
scrubs through a recording along its time axis (:class:`Timeline`), and reads and writes MCAP files.

Recordings are JetStream streams: they live in the broker (replicated in a cluster), keep recording when
the kernel stops, and outlive it. This package is the headless model; widgets in ``fastiot_widgets``
are thin views over it.

Example:
    >>> from datetime import timedelta
    >>> from fastiot.history import Recording
    >>> async def main():
    ...     rec = await Recording.start("plant", "v1.thing.>", max_age="1d")
    ...     frame = await rec.to_dataframe(start=timedelta(minutes=1))
    ...     await (await rec.replay(speed=10, subject_prefix="replay")).wait()
"""

from __future__ import annotations

from fastiot.history._frames import SEQUENCE_COLUMN
from fastiot.history.info import RecordingInfo, SubjectRange
from fastiot.history.keyvalue import Bucket, BucketInfo, BucketWatch, KeyEntry, WatchState
from fastiot.history.mcap_io import read_mcap, replay_mcap
from fastiot.history.ranges import Bound, Range, parse_duration, resolve_range
from fastiot.history.recording import Recording
from fastiot.history.replay import Replay, ReplayState
from fastiot.history.replay_broker import ReplayBroker
from fastiot.history.timeline import Timeline

__all__ = [
    "SEQUENCE_COLUMN",
    "Bound",
    "Bucket",
    "BucketInfo",
    "BucketWatch",
    "KeyEntry",
    "Range",
    "Recording",
    "RecordingInfo",
    "Replay",
    "ReplayBroker",
    "ReplayState",
    "SubjectRange",
    "Timeline",
    "WatchState",
    "parse_duration",
    "read_mcap",
    "replay_mcap",
    "resolve_range",
]
