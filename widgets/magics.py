"""IPython magics for services defined in notebook cells: ``%%service``, ``%service_stop``, ``%services``.

Load them with ``%load_ext fastiot_widgets``. Then a cell like::

    %%service
    class Doubler(FastIoTService):
        @reply(subject=DoubleRequest.get_reply_subject())
        async def double(self, request: DoubleRequest) -> DoubleReply:
            return DoubleReply(value=2 * request.value)

runs in the notebook's namespace, starts ``Doubler`` on the kernel's loop against the workbench
connection, and shows its :class:`~fastiot_widgets.ServiceControl`. Running the edited cell again
stops the running ``Doubler`` and starts the new definition (hot reload). ``%%service Doubler``
starts only the named classes of a cell that defines several. ``%service_stop Doubler`` stops it;
``%services`` shows a table of the running services.

The running services are the workbench's (:func:`fastiot.workbench.registered`), found by class name,
so no state is kept here.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

from fastiot.core.service import FastIoTService
from fastiot.exceptions import ServiceCellError
from fastiot.runner import ServiceRunner

from .service_control import ServiceControl

__all__ = [
    "ServiceCellError",
    "register_magics",
    "running_services",
    "service_cell",
    "service_stop",
    "services",
]


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion from a magic, which runs synchronously on the kernel's running loop.

    ``fastiot.workbench`` makes that loop re-entrant (nest-asyncio), so the coroutine runs right
    here while the loop goes on serving everything else (the service's own tasks included).
    """
    from fastiot import workbench

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = asyncio.get_event_loop()
    if loop.is_running() and not workbench.enable_nested_loop(loop):
        coro.close()
        raise RuntimeError(
            f"the kernel's event loop ({type(loop).__name__}) cannot be made re-entrant, so %%service cannot "
            f"wait for a service to start; use `ctl = ServiceControl(MyService); await ctl.start()` instead"
        )
    return loop.run_until_complete(coro)


def running_services(name: str | None = None) -> list[ServiceRunner]:
    """The service runners the workbench owns (started and not stopped), optionally only class ``name``."""
    from fastiot import workbench

    return [
        obj
        for obj in workbench.registered()
        if isinstance(obj, ServiceRunner) and (name is None or obj.name == name)
    ]


async def _stop_named(name: str) -> list[ServiceRunner]:
    stopped = running_services(name)
    for runner in stopped:
        await runner.stop()
    return stopped


def _defined_services(before: dict[str, Any], namespace: dict[str, Any]) -> list[type[FastIoTService]]:
    """The FastIoTService subclasses the cell bound in ``namespace``: the most derived ones, in cell order."""
    bound: list[type[FastIoTService]] = []
    for key, value in namespace.items():
        if (
            isinstance(value, type)
            and issubclass(value, FastIoTService)
            and value is not FastIoTService
            and before.get(key) is not value
            and value not in bound
        ):
            bound.append(value)
    # Classes written in the cell, not ones it merely imported (unless it only imports one).
    written = [cls for cls in bound if cls.__module__ == namespace.get("__name__")]
    candidates = written or bound
    # A base class the cell also subclasses is not started on its own.
    return [cls for cls in candidates if not any(o is not cls and issubclass(o, cls) for o in candidates)]


def service_cell(shell: Any, line: str, cell: str) -> None:
    """``%%service [ClassName ...]``: run the cell, then (re)start the services it defines."""
    from IPython.display import display

    namespace = shell.user_ns
    before = dict(namespace)
    code = shell.transform_cell(cell)
    filename = shell.compile.cache(code, shell.execution_count, raw_code=cell)  # tracebacks show the cell
    exec(compile(code, filename, "exec"), namespace)

    classes = _defined_services(before, namespace)
    wanted = line.split()
    if wanted:
        by_name = {cls.__name__: cls for cls in classes}
        missing = [name for name in wanted if name not in by_name]
        if missing:
            raise ServiceCellError(
                f"%%service {line.strip()}: the cell defines no service named {', '.join(missing)}"
            )
        classes = [by_name[name] for name in wanted]
    if not classes:
        raise ServiceCellError(
            "%%service: the cell defines no FastIoTService subclass; write e.g.\n"
            "%%service\n"
            "class Printer(FastIoTService):\n"
            "    @subscribe(subject=Thing.get_subject('>'))\n"
            "    async def on_thing(self, thing: Thing) -> None:\n"
            "        print(thing)"
        )

    controls = [ServiceControl(cls) for cls in classes]

    async def restart_all() -> list[tuple[str, BaseException]]:
        failures: list[tuple[str, BaseException]] = []
        for control in controls:
            await _stop_named(control.runner.name)  # hot reload: the previous definition goes first
            try:
                await control.start()
            except Exception as e:  # the control shows it (traceback included); the cell goes on
                failures.append((control.runner.name, e))
        return failures

    failures = _run(restart_all())
    for control in controls:
        display(control)
    for name, error in failures:
        summary = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"{name} did not start: {summary}", file=sys.stderr)


def service_stop(line: str) -> None:
    """``%service_stop ClassName [...]``: stop the running services of these class names."""
    from IPython.core.error import UsageError

    names = line.split()
    if not names:
        running = ", ".join(r.name for r in running_services()) or "none"
        raise UsageError(f"%service_stop needs a service class name; running: {running}")
    for name in names:
        stopped = _run(_stop_named(name))
        if stopped:
            print(f"stopped {name}")
        else:
            running = ", ".join(r.name for r in running_services()) or "none"
            print(f"no service named {name} is running (running: {running})", file=sys.stderr)


def services(line: str = "") -> Any:
    """``%services``: a table (pandas DataFrame) of the running services."""
    import pandas as pd

    rows = []
    for runner in running_services():
        counts = runner.handler_counts()
        rows.append(
            {
                "name": runner.name,
                "status": runner.status,
                "received": sum(c.get("received", 0) for c in counts.values()),
                "errors": sum(c.get("errors", 0) for c in counts.values()),
                "handlers": ", ".join(f"{h}: {c.get('received', 0)}" for h, c in counts.items()),
                "starts": runner.starts,
                "last log line": runner.log_lines[-1] if runner.log_lines else "",
            }
        )
    columns = ["name", "status", "received", "errors", "handlers", "starts", "last log line"]
    return pd.DataFrame(rows, columns=columns)


def register_magics(shell: Any) -> None:
    """Register ``%%service``, ``%service_stop`` and ``%services`` with the IPython ``shell``."""

    def service(line: str, cell: str) -> None:
        return service_cell(shell, line, cell)

    service.__doc__ = service_cell.__doc__
    shell.register_magic_function(service, magic_kind="cell", magic_name="service")
    shell.register_magic_function(service_stop, magic_kind="line", magic_name="service_stop")
    shell.register_magic_function(services, magic_kind="line", magic_name="services")
