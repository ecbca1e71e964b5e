"""Recording.to_parquet: a dataset partitioned by subject and hour, read whole or in parts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import ParquetUnavailableError
from fastiot.history import Recording
from fastiot.history import parquet as history_parquet
from tests.history.conftest import publish, recorded


def parquet_files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*.parquet"))


async def test_the_dataset_is_partitioned_by_subject_and_hour_and_reads_back_whole(
    connection: NatsBrokerConnection, name: str, tmp_path: Path
) -> None:
    rec = await recorded(connection, name, 60, machines=("a", "b", "c"))
    frame = await rec.to_dataframe()
    hour = frame["received_at"].iloc[0].strftime("%Y-%m-%dT%H")

    assert await rec.to_parquet(tmp_path) == tmp_path
    files = parquet_files(tmp_path)
    subjects = {f.split("/")[0] for f in files}
    assert subjects == {f"subject=v1.thing.{m}.temperature" for m in "abc"}
    assert all(f.split("/")[1].startswith("hour=") for f in files)
    assert f"hour={hour}" in {f.split("/")[1] for f in files}

    back = pd.read_parquet(tmp_path).sort_values("sequence").reset_index(drop=True)
    assert len(back) == 60
    assert back["sequence"].tolist() == frame["sequence"].tolist()
    assert back["subject"].astype(str).tolist() == frame["subject"].tolist()
    for column in ("received_at", "machine", "value", "n"):
        assert back[column].tolist() == frame[column].tolist(), column


async def test_one_subject_is_read_without_the_rest(
    connection: NatsBrokerConnection, name: str, tmp_path: Path
) -> None:
    rec = await recorded(connection, name, 40, machines=("a", "b"))
    await rec.to_parquet(tmp_path)
    dataset = ds.dataset(tmp_path, format="parquet", partitioning="hive")
    subject_a = ds.field("subject") == "v1.thing.a.temperature"
    # Partition pruning: only the files of that subject are opened at all.
    fragments = list(dataset.get_fragments(filter=subject_a))
    assert {Path(f.path).parent.parent.name for f in fragments} == {"subject=v1.thing.a.temperature"}
    table = dataset.to_table(columns=["sequence", "machine"], filter=subject_a)
    assert table.num_rows == 20 and set(table.column("machine").to_pylist()) == {"a"}


async def test_a_range_larger_than_a_chunk_is_written_in_bounded_chunks(
    connection: NatsBrokerConnection, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_parquet, "DEFAULT_CHUNK_ROWS", 100)
    written: list[int] = []
    write_to_dataset = history_parquet._to_table

    def spy(frame: pd.DataFrame) -> object:
        written.append(len(frame))
        return write_to_dataset(frame)

    monkeypatch.setattr(history_parquet, "_to_table", spy)
    rec = await recorded(connection, name, 1_050)
    await rec.to_parquet(tmp_path, start=51)
    assert max(written) <= 100 and sum(written) == 1_000  # never more than a chunk in memory
    assert sorted(pd.read_parquet(tmp_path)["sequence"].tolist()) == list(range(51, 1_051))
    # Exporting the same range again overwrites the same files instead of adding duplicates.
    before = parquet_files(tmp_path)
    await rec.to_parquet(tmp_path, start=51)
    assert parquet_files(tmp_path) == before
    assert len(pd.read_parquet(tmp_path)) == 1_000


async def test_chunks_with_different_columns_read_back_as_one_table(
    connection: NatsBrokerConnection, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_parquet, "DEFAULT_CHUNK_ROWS", 10)
    rec = await Recording.start(name, "v1.mix.>", connection=connection)
    await publish(connection, [("v1.mix.a", {"v": 1.5, "only_a": i}) for i in range(10)])
    await publish(connection, [("v1.mix.b", {"v": "text", "only_b": True}) for _ in range(10)])
    await connection.publish_raw("v1.mix.c", b"\xc1")  # not decodable: raw bytes and an error text
    await connection.flush()
    await rec.to_parquet(tmp_path)
    back = pd.read_parquet(tmp_path).sort_values("sequence").reset_index(drop=True)
    assert len(back) == 21
    assert {"v", "only_a", "only_b", "raw", "error"} <= set(back.columns)
    assert back["v"].tolist()[:10] == ["1.5"] * 10  # a number here and text there: text everywhere
    assert back["v"].tolist()[10:20] == ["text"] * 10
    assert back["error"].iloc[20] is not None


async def test_an_empty_range_writes_no_files(
    connection: NatsBrokerConnection, name: str, tmp_path: Path
) -> None:
    rec = await Recording.start(name, "v1.thing.>", connection=connection)
    await rec.to_parquet(tmp_path / "out")
    assert (tmp_path / "out").is_dir() and parquet_files(tmp_path / "out") == []


async def test_without_pyarrow_the_error_says_how_to_install_it(
    connection: NatsBrokerConnection, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(module: str, *args: object, **kwargs: object) -> object:
        if module.startswith("pyarrow"):
            raise ImportError("No module named 'pyarrow'")
        return real_import(module, *args, **kwargs)  # type: ignore[arg-type]

    rec = await Recording.start(name, "v1.thing.>", connection=connection)
    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(ParquetUnavailableError, match=r"fastiot-workbench\[parquet\]"):
        await rec.to_parquet(tmp_path)
