"""FastIoTService, the base class of every service.

Example:
    >>> import asyncio
    >>> from fastiot.core import FastIoTService, loop
    >>> from fastiot.msg.thing import Thing
    >>> class Sensor(FastIoTService):
    ...     @loop
    ...     async def measure(self):
    ...         thing = Thing(machine="press_1", name="temp", value=21.5, unit="degC")
    ...         await self.broker_connection.publish(Thing.get_subject("press_1.temp"), thing)
    ...         return asyncio.sleep(1.0)
    >>> if __name__ == "__main__":
    ...     Sensor.main()  # runs until SIGTERM or Ctrl-C
"""

from __future__ import annotations

import asyncio
import functools
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from logging import Logger
from typing import Any

from fastiot._tasks import BackgroundTasks
from fastiot.core.broker_connection import BrokerConnection, NatsBrokerConnection, Subscription
from fastiot.core.data_models import Subject
from fastiot.core.logger import logging, setup_logger
from fastiot.core.service_annotations import is_loop, replied_subject, subscribed_subject
from fastiot.core.service_discovery import DEFAULT_SERVICE_VERSION, HandlerTiming, ServiceRegistration
from fastiot.env import env_basic
from fastiot.exceptions import BrokerUnavailableError, PermissionDeniedError, ShutdownRequestedInterruption

# logging is the `fastiot` logger: FastIoT's service module has its root logger under that name.
__all__ = ["DEFAULT_DRAIN_TIMEOUT", "DEFAULT_STOP_TIMEOUT", "FastIoTService", "logging"]

# How long stopping may wait for subscriptions to drain and for tasks to finish before they are cancelled.
DEFAULT_DRAIN_TIMEOUT = 5.0
DEFAULT_STOP_TIMEOUT = 10.0
# An @subscribe / @reply method, bound to its service.
_Handler = Callable[..., Coroutine[Any, Any, Any]]

# Extra time a drain gets beyond drain_timeout to report that it timed out, before it is given up on.
_DRAIN_GRACE = 1.0


class FastIoTService:
    """Base class for all FastIoT services.

    Declare behaviour with ``@subscribe``, ``@reply`` and ``@loop`` methods, and optionally override
    :meth:`_start` and :meth:`_stop`. Run it with :meth:`main` in production, or with
    ``async with MyService(broker_connection=...)`` (as the notebook workbench does).

    Stopping always finishes: handlers get :attr:`drain_timeout` seconds to finish the messages
    already received; one still busy after that is cancelled with a warning that names it. Tasks
    (loops, :meth:`run_task`) get :attr:`stop_timeout` seconds after ``_stop()`` before they are
    cancelled. Set either on the class (or the instance) to change it.

    Args:
        broker_connection: The connection the service uses; :meth:`main` makes one from ``FASTIOT_NATS_*``.
        kwargs: Passed on to the next class in the MRO (cooperative ``__init__``).
    """

    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    """Seconds a stop waits for handlers to finish the messages already received."""
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    """Seconds a stop waits for loops and tasks after ``_stop()``, before it cancels them."""
    version: str = DEFAULT_SERVICE_VERSION
    """The version the service reports in NATS' services API (a semantic version such as ``1.2.0``)."""
    publishes: tuple[Subject, ...] = ()
    """The subjects the service publishes on (wildcards allowed), e.g. ``(Alarm.get_subject(),)``.

    Only documentation: :func:`fastiot.services.asyncapi` lists them as its ``send`` operations.
    """

    @classmethod
    def main(cls, **kwargs: Any) -> None:
        """Connect with the ``FASTIOT_NATS_*`` settings and run the service until SIGTERM or SIGINT.

        On either signal the service shuts down gracefully (subscriptions drained, ``_stop()``
        awaited, loops finished) and ``main`` returns, so the process exits 0. If the broker is
        unreachable or a loop or task failed, it exits with status 1.

        Args:
            kwargs: Passed to the class constructor.
        """
        try:
            ok = asyncio.run(cls._run_main(**kwargs))
        except KeyboardInterrupt:  # a second Ctrl-C while stopping
            ok = True
        if not ok:
            raise SystemExit(1)

    @classmethod
    async def _run_main(cls, **kwargs: Any) -> bool:
        logger = setup_logger(cls.__name__)
        service: FastIoTService | None = None

        async def closed_cb() -> None:
            if service is not None:
                await service.request_shutdown("the connection to the broker was closed")

        try:
            broker = await NatsBrokerConnection.connect(closed_cb=closed_cb, name=cls.__name__)
        except BrokerUnavailableError as e:
            logger.error("%s", e)
            return False
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        signal_tasks = BackgroundTasks()
        try:
            service = cls(broker_connection=broker, **kwargs)

            def on_signal(sig: signal.Signals) -> None:
                assert service is not None
                # request_shutdown only sets an event, so the task finishes at once.
                shutdown = service.request_shutdown(f"received {sig.name}")
                signal_tasks.spawn(shutdown, what=f"{sig.name} handler")

            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, on_signal, sig)
                    handled.append(sig)
                except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
                    pass
            await service.run()
        except PermissionDeniedError as e:  # a subscription refused at start: no point in running
            logger.error("%s cannot run: %s", cls.__name__, e)
            return False
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            await broker.close()
        return service.shutdown_exception is None

    def __init__(self, broker_connection: BrokerConnection | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.broker_connection: BrokerConnection | None = broker_connection
        self.service_id: str = env_basic.service_id
        self._logger: Logger = setup_logger(type(self).__name__)
        self._shutdown_event: asyncio.Event = asyncio.Event()
        self._owns_connection: bool = False
        self._subscription_fns: list[_Handler] = []
        self._reply_subscription_fns: list[_Handler] = []
        self._loop_fns: list[Callable[[], Coroutine[Any, Any, Awaitable[Any]]]] = []
        self._tasks: BackgroundTasks = BackgroundTasks()
        # The task running each handler call right now, so a stop can cancel one that never returns.
        self._busy_handlers: dict[asyncio.Task[Any], str] = {}
        self._stopping: bool = False
        self._subs: list[Subscription] = []
        self.subscriptions: dict[str, Subscription] = {}
        """The running subscriptions by handler name (their ``received`` and ``errors`` counters)."""
        self.shutdown_reason: str = ""
        self.shutdown_exception: BaseException | None = None
        """The exception that made the service shut down (a failed loop or task), else None."""
        self.registration: ServiceRegistration | None = None
        """How the running service answers NATS' services API (``$SRV.INFO`` ...); its ``error`` says
        why it is not discoverable. None while it does not run."""
        self._timing: HandlerTiming = HandlerTiming()

    @property
    def service_logger(self) -> Logger:
        """The logger the service writes to: ``self._logger``, which a service may replace."""
        return self._logger

    def _setup_annotations(self) -> None:
        # Done at start, not in __init__: a service's properties may depend on its __init__ having finished.
        self._subscription_fns, self._reply_subscription_fns, self._loop_fns = [], [], []
        for name in dir(type(self)):
            if name.startswith("__"):
                continue
            fn = getattr(type(self), name, None)
            if subscribed_subject(fn) is not None:
                self._subscription_fns.append(getattr(self, name))
            if replied_subject(fn) is not None:
                self._reply_subscription_fns.append(getattr(self, name))
            if is_loop(fn):
                self._loop_fns.append(getattr(self, name))

    async def _start(self) -> None:
        """Override to run async start-up code, e.g. ``await self._server.start()``."""

    async def _stop(self) -> None:
        """Override to run async clean-up code, e.g. ``await self._server.stop()``."""

    def run_task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[None]:
        """Run ``coro`` as a task owned by the service.

        If it raises, the exception is logged and a shutdown is requested; if it returns, it is
        dropped and the service goes on. Tasks are awaited after :meth:`_stop` when the service stops.
        """
        return self._tasks.spawn(self._exec_task(coro), what=getattr(coro, "__qualname__", "task"))

    async def _exec_task(self, coro: Coroutine[Any, Any, Any]) -> None:
        name = getattr(coro, "__qualname__", "task")
        try:
            await coro
        except ShutdownRequestedInterruption:
            pass
        except Exception as e:
            self._logger.exception("%s of %s failed; shutting the service down", name, type(self).__name__)
            await self.request_shutdown(f"{name} failed: {type(e).__name__}: {e}", exception=e)

    async def wait_for_shutdown(self, timeout: float = 0.0) -> bool:
        """Wait until a shutdown is requested.

        Args:
            timeout: Seconds to wait at most; 0 waits indefinitely.

        Returns:
            True if a shutdown was requested, False if the timeout passed first.

        Example:
            >>> while await self.wait_for_shutdown(1.0) is False:  # doctest: +SKIP
            ...     print("Still running...")
        """
        if timeout < 0:
            raise ValueError("timeout must be >= 0 (0 waits indefinitely)")
        if timeout == 0:
            await self._shutdown_event.wait()
            return True
        try:
            await asyncio.wait_for(self._shutdown_event.wait(), timeout=timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def run_coro(self, coro: Awaitable[Any]) -> Any:
        """Await ``coro``, or raise :class:`ShutdownRequestedInterruption` (cancelling it) on shutdown.

        Returns:
            The result of the coroutine.
        """
        if self._shutdown_event.is_set():
            if asyncio.iscoroutine(coro):
                coro.close()
            raise ShutdownRequestedInterruption()
        work = asyncio.ensure_future(coro)
        waiter = asyncio.ensure_future(self._shutdown_event.wait())
        try:
            await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        if work.cancelled() and self._shutdown_event.is_set():
            raise ShutdownRequestedInterruption()
        return work.result()

    async def __aenter__(self) -> FastIoTService:
        self._shutdown_event.clear()
        self._stopping = False
        self.shutdown_reason, self.shutdown_exception = "", None
        self.subscriptions = {}
        self._timing = HandlerTiming()  # counted from this start on, as the subscriptions' counters are
        self.registration = None
        self._setup_annotations()
        if self.broker_connection is None:
            self.broker_connection = await NatsBrokerConnection.connect(name=type(self).__name__)
            self._owns_connection = True
        try:
            await self._start()
            await self._start_annotated_subs()
            await self._confirm_subscriptions()
            self._start_annotated_loops()
            await self._register()
        except BaseException:
            await self._shutdown()
            raise
        await asyncio.sleep(0)  # let loops and subscriptions start before the caller goes on
        self._logger.info("started %s", type(self).__name__)
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> bool:
        await self._shutdown()
        return False

    async def _register(self) -> None:
        """Answer NATS' services API while the service runs (a refusal is logged and kept, not raised)."""
        assert self.broker_connection is not None
        self.registration = ServiceRegistration(
            type(self),
            service_id=self.service_id,
            subscribes=[s.name for fn in self._subscription_fns if (s := subscribed_subject(fn)) is not None],
            replies={
                fn.__name__: r
                for fn in self._reply_subscription_fns
                if (r := replied_subject(fn)) is not None
            },
            loops=[fn.__name__ for fn in self._loop_fns],
            subscriptions=lambda: self.subscriptions,
            timing=self._timing,
            logger=self._logger,
        )
        await self.registration.start(self.broker_connection)

    async def _shutdown(self) -> None:
        await self.request_shutdown()
        self._stopping = True
        if self.registration is not None:
            await self.registration.stop()  # first: a stopping service is no longer listed
        try:
            await self._stop_subs()
        finally:
            try:
                await self._stop()
            finally:
                await self._stop_tasks()
                if self._owns_connection and isinstance(self.broker_connection, NatsBrokerConnection):
                    await self.broker_connection.close()
                    self.broker_connection = None
                    self._owns_connection = False
        self._logger.info("stopped %s", type(self).__name__)

    async def run(self) -> None:
        """Start the service, run until a shutdown is requested, then stop it gracefully."""
        async with self:
            await self.wait_for_shutdown()

    async def request_shutdown(self, reason: str = "", exception: BaseException | None = None) -> None:
        """Ask all loops and tasks of the service to stop."""
        if not self._shutdown_event.is_set():
            if reason:
                self._logger.info("shutdown requested: %s", reason)
            self.shutdown_reason = reason
            self.shutdown_exception = exception
        self._shutdown_event.set()

    def _start_annotated_loops(self) -> None:
        for loop_fn in self._loop_fns:
            self.run_task(self._loop_task_cb(loop_fn))

    async def _start_annotated_subs(self) -> None:
        assert self.broker_connection is not None
        for fn in self._subscription_fns:
            subject = subscribed_subject(fn)
            assert subject is not None  # _setup_annotations took only @subscribe methods
            sub = await self.broker_connection.subscribe(
                subject=subject,
                cb=self._tracked(fn),
            )
            self._subs.append(sub)
            self.subscriptions[fn.__name__] = sub
        for fn in self._reply_subscription_fns:
            reply_subject = replied_subject(fn)
            assert reply_subject is not None  # _setup_annotations took only @reply methods
            sub = await self.broker_connection.subscribe_reply_cb(
                subject=reply_subject,
                cb=self._tracked(fn),
            )
            self._subs.append(sub)
            self.subscriptions[fn.__name__] = sub

    def _tracked(self, fn: _Handler) -> _Handler:
        """``fn`` as a handler whose running call a stop can find and cancel (same signature)."""
        name = fn.__name__

        @functools.wraps(fn)
        async def handler(*args: Any) -> Any:
            task = asyncio.current_task()
            if task is not None:
                self._busy_handlers[task] = name
            started_ns = time.perf_counter_ns()
            try:
                return await fn(*args)
            except asyncio.CancelledError:
                if self._stopping:
                    self._logger.warning(
                        "handler %s did not finish within %.1f s of the stop (drain_timeout); cancelled it",
                        name,
                        self.drain_timeout,
                    )
                raise
            finally:
                self._timing.add(name, started_ns)
                if task is not None:
                    self._busy_handlers.pop(task, None)

        return handler

    async def _confirm_subscriptions(self) -> None:
        """Return once the server has every subscription, so no message sent after the start is missed."""
        if not self._subs:
            return
        assert self.broker_connection is not None
        try:
            await self.broker_connection.flush()
        except Exception as e:  # e.g. reconnecting: nats-py sends the subscriptions when it is back
            self._logger.warning(
                "the broker did not confirm the subscriptions of %s (%s: %s); messages sent before "
                "the connection is back may be missed",
                type(self).__name__,
                type(e).__name__,
                e,
            )

    async def _loop_task_cb(self, loop_fn: Callable[[], Coroutine[Any, Any, Awaitable[Any]]]) -> None:
        while not self._shutdown_event.is_set():
            awaitable = await loop_fn()
            if not hasattr(awaitable, "__await__"):
                raise TypeError(
                    f"@loop method {loop_fn.__name__} must return an awaitable such as asyncio.sleep(1.0), "
                    f"got {type(awaitable).__name__}"
                )
            try:
                await self.run_coro(awaitable)
            except ShutdownRequestedInterruption:
                break

    async def _stop_subs(self) -> None:
        """Stop every subscription, however its handler behaves: this always finishes.

        All drain at once (a stop takes one ``drain_timeout``, not one per handler); a handler still
        busy after that is cancelled, and a subscription that did not drain is unsubscribed.
        """
        subs, self._subs = self._subs, []
        if not subs:
            return
        timeout = self.drain_timeout
        deadline = asyncio.get_running_loop().time() + timeout
        results = await asyncio.gather(*(self._drain(sub, timeout) for sub in subs), return_exceptions=True)
        await self._cancel_hung_handlers(deadline)
        for sub, result in zip(subs, results, strict=True):
            if isinstance(result, BaseException):
                self._logger.debug("draining a subscription failed: %r; unsubscribing it", result)
                try:
                    await sub.unsubscribe()
                except Exception as e:  # gone with the connection, or already unsubscribed by the drain
                    self._logger.debug("unsubscribing after a failed drain: %r", e)

    async def _cancel_hung_handlers(self, deadline: float) -> None:
        """Give handlers still busy after the drains the rest of ``drain_timeout``, then cancel them.

        (A drain returns early when, e.g., the connection is gone; the handler then still gets its time.)
        """
        busy = {task for task in self._busy_handlers if task is not asyncio.current_task()}
        remaining = deadline - asyncio.get_running_loop().time()
        if busy and remaining > 0:
            _, busy = await asyncio.wait(busy, timeout=remaining)
        if not busy:
            return
        for task in busy:
            task.cancel()  # the handler logs a warning naming itself
        _, ignoring = await asyncio.wait(busy, timeout=self.drain_timeout)
        for task in ignoring:
            self._logger.error(
                "handler %s ignores its cancellation; leaving it behind", self._busy_handlers.get(task)
            )

    @staticmethod
    async def _drain(sub: Subscription, timeout: float) -> None:
        await asyncio.wait_for(sub.drain(timeout), timeout + _DRAIN_GRACE)

    async def _stop_tasks(self) -> None:
        tasks = self._tasks.tasks()
        if not tasks:
            return
        timeout = self.stop_timeout
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            self._logger.warning(
                "task %s did not finish within %.1f s; cancelling it", task.get_name(), timeout
            )
        if pending:
            await self._tasks.cancel(timeout)
