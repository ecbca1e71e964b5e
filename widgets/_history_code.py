"""Copy as code for recordings: the cells that record, load and replay what a RecordingBrowser shows.

Each function returns the source of one cell that does with :mod:`fastiot.history` what the browser
did; the :class:`~fastiot_widgets._code.CopyAsCode` button inserts it below the active cell.

Example:
    >>> from datetime import timedelta
    >>> print(code_for_load("plant", timedelta(minutes=5), None, ["v1.thing.oven.state"]))
    from datetime import timedelta
    <BLANKLINE>
    from fastiot.history import Recording
    <BLANKLINE>
    recording = await Recording.open("plant")
    df = await recording.to_dataframe(start=timedelta(seconds=300.0), subjects=["v1.thing.oven.state"])
    df
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from fastiot.history import Bound

from ._code import _Source, python_literal

__all__ = ["code_for_load", "code_for_record_subjects", "code_for_replay"]


def _bound(value: Bound, source: _Source) -> str:
    """Source for a range bound: a timedelta back from now, a datetime or a stream sequence."""
    if isinstance(value, timedelta):
        return f"{source.need('from datetime import timedelta')}(seconds={value.total_seconds()!r})"
    if isinstance(value, datetime):
        cls = source.need("from datetime import datetime")
        return f"{cls}.fromisoformat({python_literal(value.isoformat())})"
    return repr(value)


def _range_options(start: Bound, end: Bound, subjects: Sequence[str] | None, source: _Source) -> list[str]:
    options = []
    if start is not None:
        options.append(f"start={_bound(start, source)}")
    if end is not None:
        options.append(f"end={_bound(end, source)}")
    if subjects:
        options.append(f"subjects={python_literal(list(subjects))}")
    return options


def _open(name: str, source: _Source) -> str:
    """Add the line that opens the recording ``name``; returns the variable it is bound to."""
    cls = source.need("from fastiot.history import Recording")
    recording = source.var("recording")
    source.add(f"{recording} = await {cls}.open({python_literal(name)})")
    return recording


def code_for_load(
    name: str,
    start: Bound = None,
    end: Bound = None,
    subjects: Sequence[str] | None = None,
    max_rows: int | None = None,
) -> str:
    """The code that loads a range of the recording ``name`` into a DataFrame ``df``."""
    source = _Source()
    recording = _open(name, source)
    options = _range_options(start, end, subjects, source)
    if max_rows is not None:
        options.append(f"max_rows={max_rows!r}")
    df = source.var("df")
    source.add(f"{df} = await {recording}.to_dataframe({', '.join(options)})", df)
    return source.text()


def code_for_replay(
    name: str,
    *,
    speed: float | None = 1.0,
    start: Bound = None,
    end: Bound = None,
    subjects: Sequence[str] | None = None,
    subject_prefix: str | None = None,
) -> str:
    """The code that replays a range of the recording ``name`` and waits until it has ended.

    Example:
        >>> code_for_replay("plant", speed=10, subject_prefix="replay").splitlines()[-2]
        'replay = await recording.replay(speed=10, subject_prefix="replay")'
    """
    source = _Source()
    recording = _open(name, source)
    options = [f"speed={speed!r}", *_range_options(start, end, subjects, source)]
    if subject_prefix:
        options.append(f"subject_prefix={python_literal(subject_prefix)}")
    replay = source.var("replay")
    source.add(
        f"{replay} = await {recording}.replay({', '.join(options)})",
        f"await {replay}.wait()  # {replay}.pause(), {replay}.resume(), await {replay}.stop(); "
        f"{replay}.published",
    )
    return source.text()


def code_for_record_subjects(name: str, subjects: Sequence[str], *, max_age: timedelta | None = None) -> str:
    """The code that records ``subjects`` into the recording ``name`` (as this one is configured).

    Example:
        >>> code_for_record_subjects("plant", ["v1.thing.>"]).splitlines()[-1]
        'recording = await Recording.start("plant", "v1.thing.>")'
    """
    source = _Source()
    cls = source.need("from fastiot.history import Recording")
    what = python_literal(subjects[0] if len(subjects) == 1 else list(subjects))
    options = f", max_age={_bound(max_age, source)}" if max_age is not None else ""
    recording = source.var("recording")
    source.add(f"{recording} = await {cls}.start({python_literal(name)}, {what}{options})")
    return source.text()
