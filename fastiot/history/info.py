"""What a recording holds: :class:`RecordingInfo` and :class:`SubjectRange` (the data a browser shows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = ["RecordingInfo", "SubjectRange"]


@dataclass(frozen=True)
class SubjectRange:
    """One subject of a recording: how many messages it holds and when the first and last were stored."""

    subject: str
    messages: int
    first_time: datetime | None
    last_time: datetime | None


@dataclass(frozen=True)
class RecordingInfo:
    """What a recording holds, and how it is configured.

    Attributes:
        name: The stream's name.
        subjects: The patterns it records.
        messages: Messages it holds now.
        bytes: Their size in the store.
        first_seq, last_seq: The stream sequences of the oldest and newest message (0 when empty).
        first_time, last_time: When the oldest and newest message were stored (UTC), None when empty.
        subject_counts: Messages per subject, by subject.
        recording: False once :meth:`Recording.stop` sealed it (it keeps what it holds).
        max_age, max_bytes, max_msgs: The limits after which the oldest messages are dropped (None: none).
        storage: ``"file"`` or ``"memory"``.
        replicas: Copies of the stream in a cluster.
        created: When the stream was made.
        cluster_leader: In a cluster, the server that leads the stream.
        replicas_current: In a cluster, the names of the other servers with a current copy.
    """

    name: str
    subjects: list[str]
    messages: int
    bytes: int
    first_seq: int
    last_seq: int
    first_time: datetime | None
    last_time: datetime | None
    subject_counts: dict[str, int] = field(default_factory=dict)
    recording: bool = True
    max_age: timedelta | None = None
    max_bytes: int | None = None
    max_msgs: int | None = None
    storage: str = "file"
    replicas: int = 1
    created: datetime | None = None
    cluster_leader: str | None = None
    replicas_current: list[str] = field(default_factory=list)

    @property
    def duration(self) -> timedelta | None:
        """The time between the first and the last message."""
        if self.first_time is None or self.last_time is None:
            return None
        return self.last_time - self.first_time
