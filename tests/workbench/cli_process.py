"""``fastiot-workbench`` in a subprocess, its output (stdout and stderr) read as it comes."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
from types import TracebackType

import psutil

CLI = [sys.executable, "-m", "fastiot.cli"]


class WorkbenchCommand:
    """Runs ``fastiot-workbench ARGS``; a thread reads its output, so waits are for lines, not sleeps.

    Example:
        >>> with WorkbenchCommand(["--no-lab"]) as command:  # doctest: +SKIP
        ...     command.wait_for("running without JupyterLab", 30)
    """

    def __init__(self, args: list[str], *, own_process_group: bool = False) -> None:
        self.process = subprocess.Popen(
            [*CLI, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=own_process_group,  # like a command in a terminal: its own process group
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    @property
    def output(self) -> str:
        """Everything it printed so far."""
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, marker: str, timeout: float) -> str:
        """Wait until a line containing ``marker`` is printed; returns that line."""
        with self._changed:
            self._changed.wait_for(lambda: self._ended or any(marker in line for line in self.lines), timeout)
            for line in self.lines:
                if marker in line:
                    return line
        raise AssertionError(f"{marker!r} not printed within {timeout} s; got {self.output!r}")

    def children(self) -> list[psutil.Process]:
        """Every process it started, and theirs."""
        return psutil.Process(self.process.pid).children(recursive=True)

    def broker_login(self) -> dict[str, str]:
        """``user`` and ``password`` of the broker it started, as its children got them (never printed)."""
        for child in self.children():
            with contextlib.suppress(psutil.Error):
                environ = child.environ()
                if "FASTIOT_NATS_PASSWORD" in environ:
                    return {
                        "user": environ["FASTIOT_NATS_USER"],
                        "password": environ["FASTIOT_NATS_PASSWORD"],
                    }
        raise AssertionError(f"no child of the command has FASTIOT_NATS_PASSWORD; output: {self.output!r}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait until it has exited and printed everything; returns the exit status."""
        self.process.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 30) -> int:
        """Wait until it has exited and its output is read; returns the exit status."""
        status = self.process.wait(timeout)
        self._reader.join(timeout)
        return status

    def __enter__(self) -> WorkbenchCommand:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
