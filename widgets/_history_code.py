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

from ._code import python_literal

__all__ = ["code_for_load", "code_for_record_subjects", "code_for_replay"]

_OPEN = "recording = await Recording.open({name})"
_IMPORT = "from fastiot.history import Recording"


def _cell(imports: set[str], lines: list[str]) -> str:
    # The standard library's imports first, as ruff's isort puts them.
    std = sorted(i for i in imports if i.startswith(("from datetime", "import datetime")))
    rest = sorted(imports - set(std))
    head = "\n".join(std) + ("\n\n" if std and rest else "") + "\n".join(rest)
    return head + "\n\n" + "\n".join(lines)


def _bound(value: Bound, imports: set[str]) -> str:
    """Source for a range bound: a timedelta back from now, a datetime or a stream sequence."""
    if isinstance(value, timedelta):
        imports.add("from datetime import timedelta")
        return f"timedelta(seconds={value.total_seconds()!r})"
    if isinstance(value, datetime):
        imports.add("from datetime import datetime")
        return f"datetime.fromisoformat({python_literal(value.isoformat())})"
    return repr(value)


def _range_options(start: Bound, end: Bound, subjects: Sequence[str] | None, imports: set[str]) -> list[str]:
    options = []
    if start is not None:
        options.append(f"start={_bound(start, imports)}")
    if end is not None:
        options.append(f"end={_bound(end, imports)}")
    if subjects:
        options.append(f"subjects={python_literal(list(subjects))}")
    return options


def _on_recording(name: str, imports: set[str], *lines: str) -> str:
    """A cell that opens the recording ``name`` and then runs ``lines``."""
    return _cell(imports, [_OPEN.format(name=python_literal(name)), *lines])


def code_for_load(
    name: str,
    start: Bound = None,
    end: Bound = None,
    subjects: Sequence[str] | None = None,
    max_rows: int | None = None,
) -> str:
    """The code that loads a range of the recording ``name`` into a DataFrame ``df``."""
    imports = {_IMPORT}
    options = _range_options(start, end, subjects, imports)
    if max_rows is not None:
        options.append(f"max_rows={max_rows!r}")
    return _on_recording(name, imports, f"df = await recording.to_dataframe({', '.join(options)})", "df")


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
    imports = {_IMPORT}
    options = [f"speed={speed!r}", *_range_options(start, end, subjects, imports)]
    if subject_prefix:
        options.append(f"subject_prefix={python_literal(subject_prefix)}")
    return _on_recording(
        name,
        imports,
        f"replay = await recording.replay({', '.join(options)})",
        "await replay.wait()  # replay.pause(), replay.resume(), await replay.stop(); replay.published",
    )


def code_for_record_subjects(name: str, subjects: Sequence[str], *, max_age: timedelta | None = None) -> str:
    """The code that records ``subjects`` into the recording ``name`` (as this one is configured).

    Example:
        >>> code_for_record_subjects("plant", ["v1.thing.>"]).splitlines()[-1]
        'recording = await Recording.start("plant", "v1.thing.>")'
    """
    imports = {_IMPORT}
    what = python_literal(subjects[0] if len(subjects) == 1 else list(subjects))
    options = f", max_age={_bound(max_age, imports)}" if max_age is not None else ""
    return _cell(imports, [f"recording = await Recording.start({python_literal(name)}, {what}{options})"])
