"""The Publisher's two folding panels: the history of what was sent, and the templates file.

Both are thin views: the history is :class:`fastiot.publishing.MessageHistory` on the Publisher, the
templates a :class:`fastiot.publishing.TemplateStore` (a JSON file beside the notebook). Clicks that
fail (a broken templates file, a template of another form) show why in the panel, never raise.

Example:
    >>> pub = Publisher()                                 # doctest: +SKIP
    >>> pub.templates_panel.save("lamp on")               # doctest: +SKIP
    >>> pub.templates_panel.names                         # doctest: +SKIP
    ['lamp on']
"""

from __future__ import annotations

import html
import os
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import traitlets

from fastiot.exceptions import FormError, TemplateFileError
from fastiot.publishing import Template, TemplateStore, format_headers, parse_headers

from . import _loop_bound as ui
from ._common import plural

if TYPE_CHECKING:
    from .publisher import Publisher

__all__ = ["HistoryPanel", "TemplatesPanel"]

_ERROR_COLOR = "#c62828"


def _note(text: str, *, error: bool = False) -> str:
    color = _ERROR_COLOR if error else "#616161"
    return f"<span style='color:{color};font-size:90%'>{html.escape(text)}</span>"


class HistoryPanel(widgets.VBox):
    """The messages the Publisher sent, newest first; the selected one can be sent again or edited."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher: Publisher = publisher
        self.entries = ui.Select(options=[], rows=6, layout=widgets.Layout(width="40em"))
        self.resend_button = ui.Button(
            description="Re-send", icon="redo", tooltip="Send the selected message again, as it was sent"
        )
        self.edit_button = ui.Button(
            description="Edit", icon="edit", tooltip="Put the selected message back into the form"
        )
        self.message = widgets.HTML()
        for button in (self.resend_button, self.edit_button):
            button.layout = widgets.Layout(width="auto")
        self.resend_button.on_click(lambda _b: self._resend_clicked())
        self.edit_button.on_click(lambda _b: self._edit_clicked())
        super().__init__(
            children=[self.entries, widgets.HBox([self.resend_button, self.edit_button]), self.message]
        )
        self.update()

    def update(self) -> None:
        """Show the history as it is now, the newest entry selected."""
        history = self._publisher.history
        self.entries.options = [(entry.describe(), i) for i, entry in enumerate(history)]
        self.entries.value = 0 if len(history) else None
        for button in (self.resend_button, self.edit_button):
            button.disabled = not len(history)
        text = "nothing sent yet" if not len(history) else plural(len(history), "message")
        if history.dropped:
            text += f" (the oldest {history.dropped:,} dropped)"
        self.message.value = _note(text)

    def _selected(self) -> int | None:
        index = self.entries.value
        return index if isinstance(index, int) and index < len(self._publisher.history) else None

    def _resend_clicked(self) -> None:
        index = self._selected()
        if index is not None:
            self._publisher._tasks.spawn(self._publisher.resend(index), what="re-send")

    def _edit_clicked(self) -> None:
        index = self._selected()
        if index is None:
            return
        try:
            self._publisher.load(self._publisher.history[index])
        except ValueError as e:
            self.message.value = _note(str(e), error=True)


class TemplatesPanel(widgets.VBox):
    """Named messages kept in a JSON file: load one into the form, save the form as one, delete one."""

    error = traitlets.Unicode("", help="Why the last templates action failed; '' if it did not.")

    def __init__(self, publisher: Publisher, path: str | os.PathLike[str] | None = None) -> None:
        self._publisher: Publisher = publisher
        self.store: TemplateStore = TemplateStore(path)
        self.choice = ui.Dropdown(options=[], description="template", layout=widgets.Layout(width="24em"))
        self.name_field = ui.Text(placeholder="name to save as", layout=widgets.Layout(width="14em"))
        self.load_button = ui.Button(description="Load", icon="folder-open")
        self.save_button = ui.Button(description="Save", icon="save")
        self.delete_button = ui.Button(description="Delete", icon="trash")
        self.message = widgets.HTML()
        for button in (self.load_button, self.save_button, self.delete_button):
            button.layout = widgets.Layout(width="auto")
        self.load_button.on_click(lambda _b: self._clicked(lambda: self.load(self.choice.value or "")))
        self.save_button.on_click(lambda _b: self._clicked(lambda: self.save(self.name_field.value)))
        self.delete_button.on_click(lambda _b: self._clicked(lambda: self.delete(self.choice.value or "")))
        super().__init__(
            children=[
                widgets.HBox([self.choice, self.load_button, self.delete_button]),
                widgets.HBox([self.name_field, self.save_button]),
                self.message,
            ]
        )
        self._clicked(self.refresh)

    @property
    def names(self) -> list[str]:
        """The names of the templates in the file (as last read)."""
        return [str(name) for name in self.choice.options]

    def refresh(self) -> None:
        """Read the file again (another notebook may have saved to it)."""
        names = sorted(self.store.load())
        current = self.choice.value
        self.choice.options = names
        self.choice.value = current if current in names else (names[0] if names else None)
        self._say(f"{plural(len(names), 'template')} in {self.store.path}")

    def save(self, name: str) -> Template:
        """Save what the form holds now as template ``name`` (replacing one of that name).

        Raises:
            TemplateFileError: The file is unreadable or full. FormError: headers that cannot be read.
            ValueError: No name.
        """
        pub = self._publisher
        name = name.strip()
        headers = parse_headers(pub.headers)
        if pub.free_form:
            template = Template.from_draft(name, pub.draft())
        else:
            cls = pub.msg_cls
            template = Template(
                name,
                pub.subject_field.value.strip(),
                pub.mode,
                headers=headers,
                model=f"{cls.__module__}.{cls.__qualname__}",
                inputs={n: f.raw_input() for n, f in pub.fields.items()},
            )
        self.store.save(template)
        self.refresh()
        self.choice.value = name
        self._say(f"saved {name!r} to {self.store.path}")
        return template

    def load(self, name: str) -> Template:
        """Fill the form with template ``name``.

        Raises:
            KeyError: No such template. ValueError: It belongs to another kind of form.
            TemplateFileError: The file is unreadable.
        """
        pub = self._publisher
        template = self.store.load().get(name)
        if template is None:
            raise KeyError(f"no template {name!r} in {self.store.path}")
        if pub.free_form:
            if template.model:
                raise ValueError(
                    f"{name!r} is a {template.model} form's template; open it in Publisher(that model)"
                )
            pub.set_draft(template.draft())
        else:
            cls = pub.msg_cls
            if template.model != f"{cls.__module__}.{cls.__qualname__}":
                kind = template.model or "free-form message"
                raise ValueError(f"{name!r} is a template of a {kind}, not of {cls.__name__}")
            pub.set_inputs(template.inputs)
            pub.subject_field.value = template.subject
            pub.headers = format_headers(template.headers)
        self._say(f"loaded {name!r}")
        return template

    def delete(self, name: str) -> None:
        """Remove template ``name`` from the file."""
        if not self.store.delete(name):
            raise KeyError(f"no template {name!r} in {self.store.path}")
        self.refresh()
        self._say(f"deleted {name!r}")

    def _say(self, text: str) -> None:
        self.error = ""
        self.message.value = _note(text)

    def _clicked(self, action: Any) -> None:
        try:
            action()
        except (TemplateFileError, FormError, ValueError, KeyError) as e:
            self.error = str(e.args[0]) if isinstance(e, KeyError) else str(e)
            self.message.value = _note(self.error, error=True)
