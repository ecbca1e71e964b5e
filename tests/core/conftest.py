"""Prints the figures the fault tests measured (messages, outages, losses, latency) after the run."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = []
    for status in ("passed", "failed"):
        for report in terminalreporter.stats.get(status, []):
            for name, value in getattr(report, "user_properties", []):
                if isinstance(name, str) and name.startswith("figure:") and report.when == "call":
                    lines.append(f"{report.nodeid.split('::')[-1]}: {name[7:]} = {value}")
    if lines:
        terminalreporter.section("measured figures")
        for line in lines:
            terminalreporter.write_line(line)
