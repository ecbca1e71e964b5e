"""A real ipykernel for the benchmarks, and what they measure inside it: bytes the widgets send over the comm.

:class:`BenchKernel` (used by ``bench/firehose.py``) starts a ``python3`` ipykernel with jupyter_client's
``KernelManager`` and times trivial cells through its blocking client. :class:`CommBytes` runs inside that
kernel (the kernel imports this module from bench/): it wraps the kernel session's ``send`` and
``serialize`` and adds up the bytes of every ``comm_open`` / ``comm_msg`` / ``comm_close`` (the serialized
frames, header and signature included, plus binary buffers) per comm, then credits each comm to the
top-level widget whose tree holds it. :func:`show_views` stands in for the browser: a DataGrid only sends
rows to views that asked for a window, so without a front end the bench asks as data_grid.js would.

Only the standard library is imported at module level (see _shared.py).
"""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

CELL_TIMEOUT = 30.0  # for one cell's reply; a trivial cell that takes this long fails the run
KERNEL_START_TIMEOUT = 60.0
SHUTDOWN_WAIT = 30.0  # seconds the kernel has to end on a shutdown request before it is killed
TRIVIAL_CELL = "1"
COMM_MESSAGES = ("comm_open", "comm_msg", "comm_close")
VIEW_ROWS = 40  # the rows a browser view of the grid shows (a tall notebook output), asked for with overscan
OVERSCAN = 20  # as data_grid.js


class BenchKernel:
    """A ``python3`` ipykernel started with jupyter_client's ``KernelManager``, ``env`` added to its
    environment, and its blocking client.

    Every call to the client goes through one worker thread (:meth:`call`; the client's sockets must stay in
    one thread), so the calling process's event loop keeps serving its publisher meanwhile. The kernel's
    IPython directory (its history of thousands of ``1`` cells) is a temporary one, removed by :meth:`close`.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.env: dict[str, str] = env
        self.manager: Any = None
        self.client: Any = None
        self.process: subprocess.Popen[bytes] | None = None
        self._ipython_dir: tempfile.TemporaryDirectory[str] = tempfile.TemporaryDirectory(
            prefix="bench-ipython-"
        )
        self._worker: ThreadPoolExecutor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="bench-kernel"
        )

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, function, *args)

    def start(self, setup: str) -> None:
        """Start the kernel, wait until it answers, and run the cell ``setup``."""
        from jupyter_client import KernelManager

        # A loaded machine may need more than jupyter_client's default 5 s to end the kernel on request.
        self.manager = KernelManager(kernel_name="python3", shutdown_wait_time=SHUTDOWN_WAIT)
        env = {**os.environ, **self.env, "IPYTHONDIR": self._ipython_dir.name}
        self.manager.start_kernel(env=env, stdout=subprocess.DEVNULL)  # the kernel's output goes to iopub
        self.process = self.manager.provisioner.process
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=KERNEL_START_TIMEOUT)
        self.execute(setup)

    def execute(self, code: str, value: str | None = None) -> Any:
        """Run the cell ``code`` and wait for the kernel to be idle again; the value of the expression
        ``value`` afterwards (a literal), if given."""
        reply = self.client.execute_interactive(
            code,
            user_expressions={"value": value} if value else None,
            timeout=CELL_TIMEOUT,
            output_hook=lambda _msg: None,  # results, and the widgets' comm messages, seen by no one
        )
        content = reply["content"]
        if content["status"] != "ok":
            raise RuntimeError(f"the cell failed: {content.get('ename')}: {content.get('evalue')}\n{code}")
        if value is None:
            return None
        result = content["user_expressions"]["value"]
        if result["status"] != "ok":
            raise RuntimeError(
                f"{value!r} failed in the kernel: {result.get('ename')}: {result.get('evalue')}"
            )
        return ast.literal_eval(result["data"]["text/plain"])

    def round_trip(self) -> float:
        """Seconds from sending the trivial cell until its reply and the kernel's idle status are in."""
        started = time.perf_counter()
        self.execute(TRIVIAL_CELL)
        return time.perf_counter() - started

    def round_trips_until(
        self, published: threading.Event, handled: str, sent: int, timeout: float
    ) -> list[float]:
        """Trivial cells back to back until ``published`` is set and then the kernel has handled all
        ``sent`` messages (the expression ``handled``, evaluated in a cell of its own, not timed)."""
        deadline = time.monotonic() + timeout
        round_trips = []
        while True:
            round_trips.append(self.round_trip())
            if published.is_set() and self.execute("", handled) >= sent:
                return round_trips
            if time.monotonic() > deadline:
                raise TimeoutError(f"the kernel did not handle {sent:,} messages within {timeout} s")

    def shutdown(self, last_cell: str) -> dict[str, Any]:
        """Run ``last_cell`` (stop what the kernel runs), close the channels, ask the kernel to shut down
        (jupyter_client kills it after its grace period); whether the cell worked and the kernel's exit code
        (0: it ended on the request; None: no kernel, or it is still there)."""
        stopped = False
        if self.client is not None:
            try:
                self.execute(last_cell)
                stopped = True
            except Exception as e:  # the kernel is shut down all the same
                print(f"  stopping what the kernel runs failed: {e}", flush=True)
            self.client.stop_channels()
        if self.manager is not None and self.manager.has_kernel:
            self.manager.shutdown_kernel(now=False)
        exit_code = self.process.poll() if self.process is not None else None
        return {"stopped": stopped, "exit_code": exit_code, "clean": stopped and exit_code == 0}

    async def close(self, last_cell: str) -> dict[str, Any]:
        try:
            return await self.call(self.shutdown, last_cell)
        finally:
            self._worker.shutdown()
            self._ipython_dir.cleanup()


# ---------------------------------------------------------------------------------------------------------
# Inside the kernel
# ---------------------------------------------------------------------------------------------------------


def _widget_tree(root: Any) -> Iterator[Any]:
    """``root`` and every widget its synced traits refer to, however deep (children, marks, axes, ...)."""
    import ipywidgets

    seen: set[int] = set()
    stack = [root]
    while stack:
        widget = stack.pop()
        if id(widget) in seen:
            continue
        seen.add(id(widget))
        yield widget
        for name in widget.keys:
            value = getattr(widget, name, None)
            values = (
                value
                if isinstance(value, (list, tuple))
                else list(value.values())
                if isinstance(value, dict)
                else [value]
            )
            stack.extend(v for v in values if isinstance(v, ipywidgets.Widget))


class CommBytes:
    """Bytes the kernel sends over widget comms, per comm, while :attr:`counting` (see the module docstring).

    Example (in the kernel)::

        counter = CommBytes(get_ipython().kernel.session)
        counter.start()
        ...
        counter.stop({"table": table})   # {"table": {"bytes": ..., "messages": ...}, "other": {...}}
    """

    def __init__(self, session: Any) -> None:
        self.counting: bool = False
        self.per_comm: dict[str, list[int]] = {}
        self._buffers: int = 0
        send, serialize = session.send, session.serialize

        def counting_send(*args: Any, **kwargs: Any) -> Any:
            buffers = kwargs.get("buffers", args[5] if len(args) > 5 else None)
            self._buffers = sum(memoryview(b).nbytes for b in buffers or ())
            try:
                return send(*args, **kwargs)
            finally:
                self._buffers = 0

        def counting_serialize(msg: Any, ident: Any = None) -> Any:
            frames = serialize(msg, ident)
            if self.counting and msg["header"]["msg_type"] in COMM_MESSAGES:
                comm_id = msg["content"].get("comm_id", "")
                entry = self.per_comm.setdefault(comm_id, [0, 0])
                entry[0] += sum(len(frame) for frame in frames) + self._buffers
                entry[1] += 1
            return frames

        session.send, session.serialize = counting_send, counting_serialize

    def start(self) -> None:
        self.per_comm = {}
        self.counting = True

    def stop(self, roots: dict[str, Any]) -> dict[str, dict[str, int]]:
        """Stop counting; bytes and messages per name of ``roots`` (by the widgets in each tree), and
        ``other`` for comms of none of them (e.g. widgets closed meanwhile)."""
        self.counting = False
        owner = {w.model_id: name for name, root in roots.items() for w in _widget_tree(root) if w.comm}
        totals = {name: {"bytes": 0, "messages": 0} for name in [*roots, "other"]}
        for comm_id, (size, count) in self.per_comm.items():
            total = totals[owner.get(comm_id, "other")]
            total["bytes"] += size
            total["messages"] += count
        return totals


def show_views(*roots: Any) -> int:
    """Ask every DataGrid in the trees of ``roots`` for the window a browser view at its top would ask for,
    through the handler its comm calls (a DataGrid sends rows only to views); how many grids were found."""
    from fastiot_widgets import DataGrid

    found = 0
    for root in roots:
        for widget in _widget_tree(root):
            if isinstance(widget, DataGrid):
                content = {
                    "type": "window",
                    "view": "bench",
                    "start": 0,
                    "stop": VIEW_ROWS + OVERSCAN,
                    "reset": True,
                }
                widget._handle_custom_msg(content, [])
                found += 1
    return found
