"""Every widget's on_*(callback, remove=False) behaves as fastiot's CallbackList does: a callback
registered twice is called once, removing an unknown callback does nothing, and an async callback
is refused when it is registered."""

from __future__ import annotations

import pytest

from fastiot_widgets._code import CopyButton
from fastiot_widgets.subject_detail import SubjectDetailView


def _plot_click(view: SubjectDetailView, field: str) -> None:
    """What a click on a field's plot button in the browser sends to Python."""
    view._handle_custom_msg({"type": "plot", "field": field}, [])


def test_subject_detail_plot_callbacks_are_a_callback_list() -> None:
    view = SubjectDetailView()
    first: list[str] = []
    second: list[str] = []
    view.on_plot(first.append)
    view.on_plot(first.append)  # kept once
    view.on_plot(second.append)  # a second listener does not replace the first
    _plot_click(view, "value")
    assert first == ["value"] and second == ["value"]

    view.on_plot(first.append, remove=True)
    view.on_plot(first.append, remove=True)  # unknown now: nothing happens
    _plot_click(view, "pressure")
    assert first == ["value"] and second == ["value", "pressure"]


def test_copy_button_click_callbacks_are_a_callback_list() -> None:
    button = CopyButton()
    clicks: list[CopyButton] = []
    button.on_click(clicks.append)
    button.on_click(clicks.append)
    button.click()
    assert clicks == [button]
    button.on_click(clicks.append, remove=True)
    button.on_click(clicks.append, remove=True)
    button.click()
    assert clicks == [button]


@pytest.mark.parametrize("register", ["on_plot", "on_click"])
def test_an_async_callback_is_refused_when_registered(register: str) -> None:
    widget = SubjectDetailView() if register == "on_plot" else CopyButton()

    async def handler(_: object) -> None:
        pass

    with pytest.raises(TypeError, match="plain function"):
        getattr(widget, register)(handler)
