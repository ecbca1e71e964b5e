"""CursorFollower: the state of a recording at a moving cursor, and what changed with the last move.

The headless side of "Follow" in the views: a view keeps what it shows and, at each move of the cursor,
takes only the subjects whose message at the cursor is another one than before (:attr:`CursorStep.changed`).

Example:
    >>> from fastiot.history import Timeline
    >>> from fastiot.history.follow import CursorFollower
    >>> async def main():
    ...     follower = CursorFollower(await Timeline.open("plant"))
    ...     step = await follower.move(follower.timeline.end_ns)
    ...     step.changed  # the subjects whose message at the cursor changed
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastiot._callbacks import CallbackList
from fastiot.history._names import RecordingSubjects
from fastiot.history.timeline import RecordedMessage, Time, Timeline, time_ns

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CursorFollower", "CursorStep"]


@dataclass
class CursorStep:
    """One move of the cursor.

    Attributes:
        t_ns: Where the cursor is (ns since the epoch).
        state: Every subject's last message at or before the cursor (as :meth:`Timeline.at` gives it).
        changed: The subjects whose message at the cursor is not the one before the move (new ones,
            and ones that went back to an older message or to none), in stream order.
        gone: Subjects that had a message before the move and have none now (the cursor went back).
        messages: The messages of the ``changed`` subjects, undecoded; when ``gone`` is not empty, of
            every subject at the cursor (a view starts afresh). Empty when the timeline reads through
            consumers.
    """

    t_ns: int
    state: pd.DataFrame
    changed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    messages: list[RecordedMessage] = field(default_factory=list)


class CursorFollower:
    """Moves a cursor over a :class:`Timeline` and tells what changed; views register :meth:`on_step`.

    Args:
        timeline: The timeline to follow.
        subjects: Only these subjects (patterns); all if None.
    """

    def __init__(self, timeline: Timeline, subjects: RecordingSubjects | None = None) -> None:
        self.timeline: Timeline = timeline
        self.subjects: RecordingSubjects | None = subjects
        self.sequences: dict[str, int] = {}
        """Each subject's stream sequence at the cursor: what the views hold now."""
        self.last: CursorStep | None = None
        self._steps: CallbackList[[CursorStep]] = CallbackList("cursor step")

    def forget(self) -> None:
        """Forget what the views hold: the next :meth:`move` tells every subject as changed."""
        self.sequences = {}

    def on_step(self, callback: object, remove: bool = False) -> None:
        """Call ``callback(step)`` (a plain function) after every :meth:`move`."""
        self._steps.register(callback, remove=remove)  # type: ignore[arg-type]

    async def move(self, t: Time) -> CursorStep:
        """Put the cursor at ``t``: read the state there and tell the listeners what changed.

        Raises:
            InvalidRangeError: ``t`` is not a time.

        Example:
            >>> step = await follower.move(datetime(2026, 12, 8, 3, 12))  # doctest: +SKIP
        """
        t_ns = time_ns(t)
        state = await self.timeline.at(t_ns, self.subjects)
        self.timeline.cursor_ns = t_ns
        sequences = dict(zip(state["subject"].tolist(), state["sequence"].tolist(), strict=True))
        before = self.sequences
        changed = [s for s, seq in sequences.items() if before.get(s) != seq]
        gone = [s for s in before if s not in sequences]
        self.sequences = sequences
        messages = await self.timeline.messages_at(t_ns, self.subjects)
        if not gone:
            wanted = set(changed)
            messages = [m for m in messages if m.subject in wanted]
        step = CursorStep(t_ns, state, changed, gone, messages)
        self.last = step
        self._steps(step)
        return step
