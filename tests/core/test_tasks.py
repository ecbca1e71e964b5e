"""BackgroundTasks: the one owner of tasks that are started and not awaited right away."""

from __future__ import annotations

import asyncio
import gc

import pytest

from fastiot._tasks import BackgroundTasks


async def test_a_spawned_task_is_kept_until_done_and_its_failure_reported() -> None:
    failures: list[tuple[str, str]] = []
    tasks = BackgroundTasks(lambda exc, what: failures.append((what, str(exc))))
    release = asyncio.Event()

    async def work() -> None:
        await release.wait()
        raise ValueError("broken")

    tasks.spawn(work(), what="publish")
    gc.collect()  # the loop holds tasks weakly: only the owner keeps it alive
    assert tasks.pending == 1
    release.set()
    await tasks.wait(timeout=5)
    assert tasks.pending == 0
    assert failures == [("publish", "broken")]


async def test_cancel_ends_the_tasks_and_says_which_ignore_it() -> None:
    tasks = BackgroundTasks()
    cancelled = asyncio.Event()

    async def polite() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    stubborn_may_end = asyncio.Event()

    async def stubborn() -> None:
        while not stubborn_may_end.is_set():
            try:
                await stubborn_may_end.wait()
            except asyncio.CancelledError:
                pass

    tasks.spawn(polite(), what="polite")
    task = tasks.spawn(stubborn(), what="stubborn")
    await asyncio.sleep(0)
    left = await tasks.cancel(timeout=0.1)
    assert cancelled.is_set()
    assert left == [task] and task.get_name() == "stubborn"
    stubborn_may_end.set()
    await tasks.wait(timeout=5)
    assert tasks.pending == 0


async def test_wait_is_bounded() -> None:
    tasks = BackgroundTasks()
    tasks.spawn(asyncio.Event().wait(), what="forever")
    with pytest.raises(asyncio.TimeoutError):
        await tasks.wait(timeout=0.05)
    tasks.cancel_all()
    await tasks.wait(timeout=5)


def test_spawn_without_a_running_loop_says_what_to_do() -> None:
    async def work() -> None:
        pass

    with pytest.raises(RuntimeError, match=r"start runs as a task on an asyncio loop.*asyncio\.run"):
        BackgroundTasks().spawn(work(), what="start")
