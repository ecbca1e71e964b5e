"""Fixtures of the widget tests: a clean workbench after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import ipywidgets
import pytest

from fastiot import workbench


@pytest.fixture(autouse=True)
async def clean_workbench() -> AsyncIterator[None]:
    """Stop every service the test left running and close the workbench connection of its loop."""
    yield
    await workbench.shutdown()
    ipywidgets.Widget.close_all()
