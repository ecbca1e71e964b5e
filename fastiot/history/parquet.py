"""A recording's range as a Parquet dataset, partitioned by subject and hour, written in bounded batches.

Layout (hive partitioning, which pandas, pyarrow, DuckDB and Spark read)::

    DIRECTORY/subject=v1.thing.press_1.temperature/hour=2026-01-31T14/NAME-<first seq>-<last seq>-0.parquet

``pd.read_parquet(DIRECTORY)`` reads all of it; pyarrow (``pyarrow.dataset.dataset(DIRECTORY,
partitioning="hive")`` with a filter) or DuckDB (``read_parquet('DIRECTORY/*/*/*.parquet',
hive_partitioning=true)``) read one subject or a few hours without loading the rest. At most
:data:`DEFAULT_CHUNK_ROWS` rows are held in memory at a time, so a recording larger than memory exports.
Files are named after the stream sequences they hold: exporting the same range again overwrites them.
"""

from __future__ import annotations

import asyncio
import gc
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import ParquetUnavailableError
from fastiot.history._frames import FrameBuilder
from fastiot.history._reader import StreamReader
from fastiot.history.ranges import Range

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["DEFAULT_CHUNK_ROWS", "HOUR_COLUMN", "SUBJECT_COLUMN", "write_parquet"]

DEFAULT_CHUNK_ROWS = 200_000
SUBJECT_COLUMN = "subject"
HOUR_COLUMN = "hour"
"""The hour partition: ``YYYY-MM-DDTHH`` (UTC) of ``received_at``."""


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # the submodule write_to_dataset lives in
    except ImportError as e:
        raise ParquetUnavailableError(
            "exporting Parquet needs pyarrow: pip install 'fastiot-workbench[parquet]'"
        ) from e
    return pyarrow


def _hours(frame: pd.DataFrame) -> np.ndarray:
    import pandas as pd

    codes, uniques = pd.factorize(frame["received_at"].dt.floor("h"))
    names = np.asarray(pd.DatetimeIndex(uniques).strftime("%Y-%m-%dT%H"), dtype=object)
    return names[codes] if len(codes) else np.empty(0, dtype=object)


def _text_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.hex() if isinstance(value, bytes) else str(value)


def _to_table(frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table; object columns Arrow cannot hold as one type become text."""
    pa = _pyarrow()
    for name in frame.columns:
        if frame[name].dtype == object:
            try:
                pa.array(frame[name], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                frame[name] = frame[name].map(_text_or_none)
    return pa.Table.from_pandas(frame, preserve_index=False)


def _unified(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for every file: fields of all of them; a field with types that do not merge is text."""
    pa = _pyarrow()
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    fields: dict[str, Any] = {}
    for schema in schemas:
        for field in schema:
            known = fields.get(field.name)
            if known is None:
                fields[field.name] = field
            elif known.type != field.type:
                try:
                    fields[field.name] = pa.unify_schemas(
                        [pa.schema([known]), pa.schema([field])], promote_options="permissive"
                    ).field(field.name)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    fields[field.name] = pa.field(field.name, pa.large_string())
    return pa.schema(list(fields.values()))


def _conform(path: str, schema: pa.Schema) -> None:
    """Rewrite one file with ``schema``: missing columns as nulls, others cast (to text where needed)."""
    pa = _pyarrow()
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, partitioning=None)
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(len(table), field.type))
            continue
        column = table.column(field.name)
        if column.type != field.type:
            if pa.types.is_large_string(field.type) and not pa.types.is_string(column.type):
                column = pc.cast(column, pa.large_string(), safe=False)
            else:
                column = column.cast(field.type)
        columns.append(column)
    pq.write_table(pa.Table.from_arrays(columns, schema=schema), path)


async def write_parquet(
    connection: NatsBrokerConnection,
    stream: str,
    directory: Path,
    range_: Range,
    filters: list[str],
    *,
    chunk_rows: int | None = None,
) -> Path:
    """Write the messages of ``stream`` in ``range_`` to a Parquet dataset in ``directory``.

    Rows go out ``chunk_rows`` (default :data:`DEFAULT_CHUNK_ROWS`) at a time, decoded like
    :meth:`Recording.to_dataframe`. When the chunks' columns differ (a field that appears later, a
    value that is a number in one hour and text in another), the files written are brought to one
    schema afterwards, one file at a time, so a reader of the whole dataset sees every column.

    Returns:
        ``directory``.

    Raises:
        ParquetUnavailableError: pyarrow is not installed.
        RecordingDeletedError: The recording was deleted (also during the export).
    """
    _pyarrow()
    import pyarrow.parquet as pq

    chunk_rows = chunk_rows or DEFAULT_CHUNK_ROWS
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    written: dict[str, Any] = {}  # path -> schema of the file

    def remember(file: Any) -> None:
        written[file.path] = file.metadata.schema.to_arrow_schema()

    def write(frame: pd.DataFrame) -> None:
        frame[HOUR_COLUMN] = _hours(frame)
        first, last = int(frame["sequence"].iloc[0]), int(frame["sequence"].iloc[-1])
        pq.write_to_dataset(
            _to_table(frame),
            root_path=str(directory),
            partition_cols=[SUBJECT_COLUMN, HOUR_COLUMN],
            basename_template=f"{stream}-{first:012d}-{last:012d}-{{i}}.parquet",
            existing_data_behavior="overwrite_or_ignore",
            file_visitor=remember,
        )

    async def flush(builder: FrameBuilder) -> None:
        if len(builder):
            # In a thread: the kernel stays responsive; the read waits (the server is held back meanwhile).
            await asyncio.to_thread(write, builder.to_dataframe())

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        async with StreamReader(connection, stream, range_=range_, filters=filters) as reader:
            builder = FrameBuilder(min(chunk_rows, max(1, reader.pending)))
            async for batch in reader:
                offset = 0
                while offset < len(batch):
                    take = min(len(batch) - offset, builder.capacity - len(builder))
                    builder.add(_slice(batch, offset, offset + take) if take < len(batch) else batch)
                    offset += take
                    if len(builder) >= builder.capacity:
                        await flush(builder)
                        builder = FrameBuilder(builder.capacity)
            await flush(builder)
    finally:
        if gc_was_enabled:
            gc.enable()
    schemas = {str(schema.remove_metadata()): schema for schema in written.values()}
    if len(schemas) > 1:
        schema = _unified(list(schemas.values()))
        for path, file_schema in written.items():
            if not file_schema.equals(schema):
                _conform(path, schema)
    return directory


def _slice(batch: Any, start: int, stop: int) -> Any:
    from fastiot.history._consumers import RawBatch

    return RawBatch(
        subjects=batch.subjects[start:stop],
        sequences=batch.sequences[start:stop],
        times=batch.times[start:stop],
        payloads=batch.payloads[start:stop],
        headers={i - start: h for i, h in batch.headers.items() if start <= i < stop},
    )
