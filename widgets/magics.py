"""IPython magics for services defined in notebook cells: ``%%service``, ``%service_stop``, ``%services``.

``import fastiot_widgets`` in a notebook registers them (so does ``%load_ext fastiot_widgets``).
Then a cell like::

    %%service
    class Doubler(FastIoTService):
        @reply(subject=DoubleRequest.get_reply_subject())
        async def double(self, request: DoubleRequest) -> DoubleReply:
            return DoubleReply(value=2 * request.value)

runs in the notebook's namespace, starts ``Doubler`` on the kernel's loop against the workbench
connection, and shows its :class:`~fastiot_widgets.ServiceControl`. Running the edited cell again
(or another cell defining ``Doubler``) retires the previous one and starts the new definition (hot
reload): the old control shows "replaced by a newer cell" and cannot start, so two versions never
run at once. ``%%service Doubler`` starts only the named classes of a cell that defines several.
``%service_stop Doubler`` stops it; ``%services`` shows a table of the running services.

``%service_export [Doubler] doubler.py [--recording plant]`` writes the service as a module (the imports
and definitions it uses, from the notebook's cells, and a ``__main__``) and ``test_doubler.py`` beside
it (see :func:`fastiot.services.export_service`); the "Export" button of its control does the same into
the exports folder.

``%%service --replay plant [--speed 10] [--since 1h]`` runs the cell's service against a private
broker (a nats-server of its own on a free loopback port) fed from the recording ``plant``: you
test it on recorded traffic without touching the live plant. Its control shows the replay's
progress beside the handler counters; stopping the service stops the replay and the private broker.

Example:
    >>> import fastiot_widgets    # doctest: +SKIP
    >>> %services                 # doctest: +SKIP
    no services running
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from fastiot import workbench
from fastiot.core.service import FastIoTService
from fastiot.exceptions import ServiceExportError
from fastiot.exports import exports_dir
from fastiot.history import parse_duration
from fastiot.history.replay_broker import ReplayBroker
from fastiot.runner import ServiceRunner
from fastiot.services.export import ExportedService, export_service

from .errors import ServiceCellError
from .replay_view import ReplayServiceControl
from .service_control import ServiceControl

__all__ = [
    "ServiceCellError",
    "ServiceMagics",
    "forget_extension_load",
    "load_ipython_extension",
    "register_magics",
    "running_services",
]

NO_SERVICES = "no services running"


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion from a magic, which runs synchronously on the kernel's running loop.

    This makes that loop re-entrant (nest-asyncio2), so the coroutine runs right
    here while the loop goes on serving everything else (the service's own tasks included).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        coro.close()
        raise RuntimeError(
            "%%service runs services on the kernel's event loop, and none is running here; use it in a "
            "Jupyter kernel, or `await ServiceRunner(MyService).start()` inside asyncio.run(...)"
        ) from None
    if not workbench.enable_nested_loop(loop):
        coro.close()
        raise RuntimeError(
            f"the kernel's event loop ({type(loop).__name__}) cannot be made re-entrant, so %%service cannot "
            f"wait for a service to start; use `ctl = ServiceControl(MyService); await ctl.start()` instead"
        )
    return loop.run_until_complete(coro)


def running_services(name: str | None = None) -> list[ServiceRunner]:
    """The service runners the workbench owns (started and not stopped), optionally only class ``name``."""
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


def _replay_options(args: Any) -> dict[str, Any]:
    """``speed`` and ``start`` of ``--replay`` from ``--speed`` and ``--since``.

    Raises:
        UsageError: They do not parse, or are given without ``--replay``.
    """
    if not args.replay:
        if args.speed is not None or args.since is not None:
            raise UsageError("--speed and --since go with --replay NAME (the recording to replay)")
        return {}
    options: dict[str, Any] = {"speed": 1.0}
    if args.speed is not None:
        try:
            options["speed"] = None if args.speed == "max" else float(args.speed)
        except ValueError:
            raise UsageError(
                f"--speed takes a number (10: ten times as fast) or 'max', got {args.speed!r}"
            ) from None
    if args.since is not None:
        try:
            options["start"] = parse_duration(args.since)
        except ValueError as e:
            raise UsageError(f"--since: {e}") from None
    ReplayBroker(args.replay, **options)  # InvalidRecordingError now for a bad name or speed
    return options


def _cell_number(shell: Any) -> int:
    """The number of the cell running now (``In[10]``), as IPython names it in tracebacks.

    IPython 9 counts ``execution_count`` up before the cell runs, IPython 8 after it; the result the
    cell is filling in has its own number either way.
    """
    result = getattr(shell.displayhook, "exec_result", None)
    number = getattr(result, "execution_count", None)
    return number if isinstance(number, int) else int(shell.execution_count)


def _run_cell_body(shell: Any, magic_line: str, cell: str, namespace: dict[str, Any]) -> None:
    """Run a cell magic's body in ``namespace`` as IPython runs a cell.

    The source is cached under the cell's own number (``Cell In[10]``) with the magic's line as its line
    1, so a traceback names the cell and the line as the notebook shows them; the shell's compiler
    keeps the notebook's ``from __future__`` imports.
    """
    __tracebackhide__ = True
    code = shell.transform_cell(cell)
    filename = shell.compile.cache(f"{magic_line}\n{code}", _cell_number(shell), raw_code=cell)
    exec(shell.compile("\n" + code, filename, "exec"), namespace)


def _show_syntax_error(shell: Any, error: SyntaxError) -> bool:
    """Show a syntax error of the cell as IPython shows one in a plain cell, and fail the cell.

    IPython shows a SyntaxError raised while code runs with every frame down to the raise (the
    magic's), so the magic shows it itself and marks the running cell's result as failed, which the
    kernel reports as the cell's error. Returns False outside a running cell (then raise it).
    """
    result = getattr(shell.displayhook, "exec_result", None)
    if result is None:
        return False
    shell.showsyntaxerror()
    result.error_in_exec = error
    return True


def _show_only_the_cell(shell: Any, error: Exception) -> None:
    """Make IPython show ``error`` without the magic's frames (nor the cell as one string).

    An error of the cell's code is shown from the cell's first frame on; one of the magic itself
    (no service defined, a bad recording name) as its message. IPython asks an exception for
    ``_render_traceback_()`` before formatting it.
    """
    if isinstance(error, UsageError):
        return  # IPython shows it as a message already
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code is not _run_cell_body.__code__:
        tb = tb.tb_next
    start = tb.tb_next if tb is not None else None  # the cell's code, which _run_cell_body ran
    formatter = shell.InteractiveTB

    def render() -> list[str]:
        if start is None:
            return list(formatter.get_exception_only(type(error), error))
        return list(formatter.structured_traceback(type(error), error, start, tb_offset=0))

    with contextlib.suppress(AttributeError):  # an exception class that takes no attributes
        error._render_traceback_ = render  # type: ignore[attr-defined]


@magics_class
class ServiceMagics(Magics):
    """``%%service``, ``%service_stop`` and ``%services`` of one IPython shell.

    It remembers the newest runner each ``%%service`` run made per service name, so the next run
    can retire it (:meth:`fastiot.runner.ServiceRunner.retire`).
    """

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._newest: dict[str, ServiceRunner] = {}
        # The newest %%service cell (its Python, without the magic's line) of each service name.
        self._cells: dict[str, str] = {}

    @magic_arguments()
    @argument(
        "names",
        nargs="*",
        metavar="ClassName",
        help="Start only these classes of the cell (default: the most derived services it defines).",
    )
    @argument(
        "--replay",
        metavar="NAME",
        help="Run against a private broker fed from the recording NAME, not the live one.",
    )
    @argument("--speed", metavar="X", help="The replay's speed: 10 is ten times as fast; 'max' (default 1).")
    @argument(
        "--since", metavar="DURATION", help="Replay only the last DURATION (e.g. 10m, 1h) of the recording."
    )
    @cell_magic
    def service(self, line: str, cell: str) -> None:
        """Run the cell, then (re)start the services it defines and show their controls."""
        __tracebackhide__ = True
        shell = self.shell
        assert shell is not None  # a registered Magics always has its shell
        try:
            self._service(shell, line, cell)
        except SyntaxError as e:
            if not _show_syntax_error(shell, e):
                raise
        except Exception as e:
            _show_only_the_cell(shell, e)
            raise

    def _service(self, shell: Any, line: str, cell: str) -> None:
        __tracebackhide__ = True
        from IPython.display import display

        args = parse_argstring(self.service, line)
        replay_options = _replay_options(args)  # bad options fail before the cell runs
        namespace = shell.user_ns
        before = dict(namespace)
        _run_cell_body(shell, f"%%service {line}".rstrip(), cell, namespace)

        classes = self._chosen(_defined_services(before, namespace), args.names)
        for cls in classes:
            self._cells[cls.__name__] = cell
        controls = [
            ReplayServiceControl(cls, ReplayBroker(args.replay, **replay_options))
            if args.replay
            else ServiceControl(cls)
            for cls in classes
        ]
        for control in controls:
            control.set_exporter(self._exporter(control.runner.name))
        failures = _run(self._replace_and_start(controls))
        for control in controls:
            display(control)
        for name, error in failures:
            summary = str(error).splitlines()[0] if str(error) else type(error).__name__
            print(f"{name} did not start: {summary}", file=sys.stderr)

    @staticmethod
    def _chosen(classes: list[type[FastIoTService]], names: list[str]) -> list[type[FastIoTService]]:
        if names:
            by_name = {cls.__name__: cls for cls in classes}
            missing = [name for name in names if name not in by_name]
            if missing:
                raise ServiceCellError(
                    f"%%service {' '.join(names)}: the cell defines no service named {', '.join(missing)}"
                )
            return [by_name[name] for name in names]
        if not classes:
            raise ServiceCellError(
                "%%service: the cell defines no FastIoTService subclass; write e.g.\n"
                "%%service\n"
                "class Printer(FastIoTService):\n"
                "    @subscribe(subject=Thing.get_subject('>'))\n"
                "    async def on_thing(self, thing: Thing) -> None:\n"
                "        print(thing)"
            )
        return classes

    async def _replace_and_start(self, controls: list[ServiceControl]) -> list[tuple[str, BaseException]]:
        failures: list[tuple[str, BaseException]] = []
        for control in controls:
            name = control.runner.name
            # Hot reload: the previous definition goes first, and for good (its control cannot start it).
            previous = self._newest.pop(name, None)
            if previous is not None:
                await previous.retire()
            await _stop_named(name)  # one started otherwise, e.g. by a ServiceControl in a cell
            self._newest[name] = control.runner
            try:
                await control.start()
            except Exception as e:  # the control shows it (traceback included); the cell goes on
                failures.append((name, e))
        return failures

    @magic_arguments()
    @argument("names", nargs="*", metavar="ClassName", help="The class names of the services to stop.")
    @line_magic
    def service_stop(self, line: str) -> None:
        """Stop the running services of these class names."""
        args = parse_argstring(self.service_stop, line)
        if not args.names:
            raise UsageError(f"%service_stop needs a service class name; running: {self._running_names()}")
        for name in args.names:
            if _run(_stop_named(name)):
                print(f"stopped {name}")
            else:
                print(
                    f"no service named {name} is running (running: {self._running_names()})", file=sys.stderr
                )

    def _exporter(self, name: str) -> Callable[[], Awaitable[ExportedService]]:
        """What the Export button of ``name``'s control does: write it to the exports folder.

        The module is rewritten; a test already there is kept, as the user may have extended it.
        """

        def export() -> Awaitable[ExportedService]:
            return self.export(name, exports_dir() / f"{_snake(name)}.py", overwrite=True, keep_test=True)

        return export

    @magic_arguments()
    @argument(
        "target",
        nargs="+",
        metavar="[ClassName] path.py",
        help="The service (default: the one of the newest %%%%service cell) and the module to write.",
    )
    @argument("--recording", metavar="NAME", help="The test replays a few messages of this recording.")
    @argument("--force", action="store_true", help="Replace the module and its test if they exist.")
    @line_magic
    def service_export(self, line: str) -> None:
        """Write a ``%%service`` cell's service as a module with a ``__main__``, and its pytest file."""
        args = parse_argstring(self.service_export, line)
        if len(args.target) > 2:
            raise UsageError(
                "%service_export takes [ClassName] path.py, e.g. %service_export Doubler doubler.py"
            )
        if len(args.target) == 2:
            name, path = args.target
        elif self._cells:
            name, path = list(self._cells)[-1], args.target[0]
        else:
            raise UsageError("%service_export exports a service of a %%service cell; run one first")
        try:
            exported = _run(self.export(name, Path(path), recording=args.recording, overwrite=args.force))
        except (ServiceExportError, ServiceCellError) as e:
            raise UsageError(str(e)) from None  # a message saying what to do, not the magic's traceback
        print(exported)

    async def export(
        self,
        name: str,
        path: Path,
        *,
        recording: str | None = None,
        overwrite: bool = False,
        keep_test: bool = False,
    ) -> ExportedService:
        """Export the service ``name`` of its newest ``%%service`` cell (see :func:`export_service`).

        Raises:
            ServiceCellError: No ``%%service`` cell defined ``name``.
        """
        cell = self._cells.get(name)
        shell = self.shell
        service = shell.user_ns.get(name) if shell is not None else None
        if cell is None or not (isinstance(service, type) and issubclass(service, FastIoTService)):
            known = ", ".join(self._cells) or "none"
            raise ServiceCellError(f"no %%service cell defined {name} (services of %%service cells: {known})")
        messages = None
        if recording:
            from fastiot.services.recorded import recorded_messages

            messages = await recorded_messages(service, recording)
        return export_service(
            service,
            path,
            cell=cell,
            history=_history(shell),
            namespace=shell.user_ns if shell is not None else None,
            messages=messages,
            recording=recording,
            overwrite=overwrite,
            keep_test=keep_test,
        )

    @staticmethod
    def _running_names() -> str:
        return ", ".join(runner.name for runner in running_services()) or "none"

    @magic_arguments()
    @line_magic
    def services(self, line: str = "") -> Any:
        """A table (pandas DataFrame) of the running services, or "no services running"."""
        parse_argstring(self.services, line)
        return services_table()


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _history(shell: Any) -> list[str]:
    """The notebook's cells as Python, oldest first: a cell magic's (``%%service``) cell as its body."""
    cells: list[str] = []
    for source in (shell.user_ns.get("In", []) if shell is not None else [])[1:]:
        cells.append(_cell_magic_body(source) or source)
    return cells


def _cell_magic_body(source: str) -> str | None:
    """The body of ``get_ipython().run_cell_magic('service', line, body)``, IPython's form of a magic cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        return None
    call = tree.body[0].value
    if (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "run_cell_magic"
        and len(call.args) == 3
        and isinstance(call.args[2], ast.Constant)
        and isinstance(call.args[2].value, str)
    ):
        return call.args[2].value
    return None


def services_table() -> Any:
    """A DataFrame of the running services (what ``%services`` shows); ``None`` after printing
    "no services running" when there are none."""
    import pandas as pd

    rows = []
    for runner in running_services():
        counts = runner.handler_counts()
        rows.append(
            {
                "name": runner.name,
                "status": str(runner.status),
                "received": sum(c.get("received", 0) for c in counts.values()),
                "errors": sum(c.get("errors", 0) for c in counts.values()),
                "handlers": ", ".join(f"{h}: {c.get('received', 0)}" for h, c in counts.items()),
                "starts": runner.starts,
                "last log line": runner.log_lines[-1] if runner.log_lines else "",
            }
        )
    if not rows:
        print(NO_SERVICES)
        return None
    return pd.DataFrame(rows)


def load_ipython_extension(shell: Any) -> None:
    """``--ext=fastiot_widgets.magics``: how the workbench's kernels register the magics at start.

    Under this name, not ``fastiot_widgets``, so a notebook's own ``%load_ext fastiot_widgets`` is not
    answered with "already loaded" (it registers nothing twice either).
    """
    register_magics(shell)


def forget_extension_load(shell: Any, name: str) -> None:
    """Make IPython forget, once the running cell is done, that extension ``name`` was loaded.

    Registering is idempotent (:func:`register_magics`), and IPython answers a second ``%load_ext`` of
    a loaded extension with "already loaded. To reload it, use: %reload_ext", which a notebook
    re-run from its top should not show.
    """
    events = getattr(shell, "events", None)
    manager = getattr(shell, "extension_manager", None)
    if events is None or manager is None:
        return

    def forget(*_: Any) -> None:
        manager.loaded.discard(name)
        events.unregister("post_execute", forget)

    events.register("post_execute", forget)


def register_magics(shell: Any) -> None:
    """Register ``%%service``, ``%service_stop``, ``%services``, ``%service_export`` with ``shell`` (once)."""
    if ServiceMagics.__name__ in shell.magics_manager.registry:
        return  # e.g. `import fastiot_widgets`, then `%load_ext fastiot_widgets`: keep its memory
    shell.register_magics(ServiceMagics(shell))
