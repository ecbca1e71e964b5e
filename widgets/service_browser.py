"""ServiceBrowser: the services on the broker, live, with their endpoints and a form to ask them.

A thin view over :class:`fastiot.services.ServiceDirectory`, which discovers the services through NATS'
services API every few seconds (FastIoT's and any other NATS micro service). The table shows each
instance's name, id, host, uptime, requests, errors and average time; choosing one shows its endpoints
with their request and response schemas, and "Request" opens a Publisher filled with an example
request made from the schema.

Example:
    >>> from fastiot_widgets import ServiceBrowser
    >>> browser = ServiceBrowser()                 # doctest: +SKIP
    >>> browser                                    # doctest: +SKIP
    >>> await browser.refresh()                    # or wait for the next round  # doctest: +SKIP
    >>> browser.select("Doubler"); browser.open_request("double")  # doctest: +SKIP
    >>> await browser.publisher.request()          # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
from datetime import timedelta
from typing import Any

import ipywidgets as widgets
import traitlets

from fastiot._tasks import BackgroundTasks, loop_is_running
from fastiot.core.broker_connection import BrokerConnection
from fastiot.services import DiscoveredService, ServiceDirectory
from fastiot.services.directory import DEFAULT_REFRESH_INTERVAL, example_request

from . import _loop_bound as ui
from ._common import close_widgets, pre_html
from .publisher import Publisher

__all__ = ["ServiceBrowser"]

_COLUMNS = ("name", "id", "host", "uptime", "requests", "errors", "avg time")


def _uptime(value: timedelta | None) -> str:
    if value is None:
        return ""
    seconds = max(0, int(value.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _row(service: DiscoveredService) -> list[str]:
    average = f"{service.average_time * 1000:.2f} ms" if service.requests else ""
    return [
        service.name,
        service.id,
        service.host,
        _uptime(service.uptime),
        str(service.requests),
        str(service.errors),
        average,
    ]


def _table_html(services: list[DiscoveredService], selected: tuple[str, str] | None) -> str:
    if not services:
        return "<i>no service answered (yet)</i>"
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{c}</th>" for c in _COLUMNS)
    rows = []
    for service in services:
        style = "background:#e3f2fd" if (service.name, service.id) == selected else ""
        error = ' style="color:#c62828"' if service.errors else ""
        cells = "".join(
            f"<td style='padding:2px 8px'{error if i == 5 else ''}>{html.escape(v)}</td>"
            for i, v in enumerate(_row(service))
        )
        rows.append(f"<tr style='{style}'>{cells}</tr>")
    return f"<table style='border-collapse:collapse;font-size:90%'><tr>{head}</tr>{''.join(rows)}</table>"


def _schema_html(title: str, schema: dict[str, Any] | None) -> str:
    text = json.dumps(schema, indent=2) if schema else "(not given)"
    return f"<details><summary>{html.escape(title)}</summary>{pre_html(text)}</details>"


def _detail_html(service: DiscoveredService) -> str:
    parts = [f"<b>{html.escape(service.name)}</b> {html.escape(service.version)}"]
    if service.description:
        parts.append(f" — {html.escape(service.description)}")
    if service.subscribes:
        parts.append(f"<br>subscribes: <code>{html.escape(', '.join(service.subscribes))}</code>")
    if service.loops:
        parts.append(f"<br>loops: {html.escape(', '.join(service.loops))}")
    if not service.endpoints:
        parts.append("<br><i>no endpoints (no @reply)</i>")
    for endpoint in service.endpoints:
        counters = f"{endpoint.requests} requests, {endpoint.errors} errors"
        if endpoint.requests:
            counters += f", {endpoint.average_time * 1000:.2f} ms average"
        parts.append(
            f"<div style='margin-top:4px'><b>{html.escape(endpoint.name)}</b> on "
            f"<code>{html.escape(endpoint.subject)}</code> ({counters})"
        )
        if endpoint.last_error:
            parts.append(f"<div style='color:#c62828'>last error: {html.escape(endpoint.last_error)}</div>")
        parts.append(_schema_html("request schema", endpoint.request_schema))
        parts.append(_schema_html("response schema", endpoint.response_schema) + "</div>")
    return "".join(parts)


class ServiceBrowser(widgets.VBox):
    """A live table of the services on the broker, their endpoints and a request form.

    Args:
        connection: The connection to ask on; default the workbench's.
        interval: Seconds between two discoveries.
        timeout: Seconds each discovery waits for answers.

    Attributes:
        directory: The headless model (:class:`~fastiot.services.ServiceDirectory`).
        publisher: The Publisher the last "Request" opened, else None.
    """

    selected = traitlets.Tuple(
        default_value=(), help="(name, id) of the service whose endpoints are shown; () for none."
    )
    error = traitlets.Unicode("", help="Why the latest discovery failed; '' after a success.")

    def __init__(
        self,
        connection: BrokerConnection | None = None,
        *,
        interval: float = DEFAULT_REFRESH_INTERVAL,
        timeout: float | None = None,
    ) -> None:
        options: dict[str, Any] = {"connection": connection, "interval": interval}
        if timeout is not None:
            options["timeout"] = timeout
        self.directory: ServiceDirectory = ServiceDirectory(**options)
        self.connection: BrokerConnection | None = connection
        self.publisher: Publisher | None = None
        self._tasks: BackgroundTasks = BackgroundTasks(self._on_task_error)

        self.title = widgets.HTML("<b>Services on the broker</b>")
        self.status_view = widgets.HTML()
        self.refresh_button = ui.Button(description="Refresh", icon="refresh", layout={"width": "auto"})
        self.table_view = widgets.HTML()
        self.service_field = ui.Dropdown(description="Service", options=[], layout={"width": "auto"})
        self.detail_view = widgets.HTML()
        self.endpoint_field = ui.Dropdown(description="Endpoint", options=[], layout={"width": "auto"})
        self.request_button = ui.Button(
            description="Request",
            icon="paper-plane",
            tooltip="Open a Publisher with an example request made from the endpoint's schema",
            layout={"width": "auto"},
        )
        self.publisher_box = widgets.VBox()

        self.refresh_button.on_click(lambda _b: self._tasks.spawn(self.refresh(), what="refresh"))
        self.service_field.observe(self._on_service_chosen, names="value")
        self.request_button.on_click(lambda _b: self._open_chosen())
        self.directory.on_change(self._render)

        super().__init__(
            children=[
                widgets.HBox([self.title, self.refresh_button, self.status_view]),
                self.table_view,
                self.service_field,
                self.detail_view,
                widgets.HBox([self.endpoint_field, self.request_button]),
                self.publisher_box,
            ]
        )
        self._render(self.directory.services)
        if loop_is_running():
            self._tasks.spawn(self.directory.start(), what="discover the services")

    @property
    def services(self) -> list[DiscoveredService]:
        """The services of the latest discovery."""
        return self.directory.services

    async def refresh(self) -> list[DiscoveredService]:
        """Discover the services now (the table follows).

        Returns:
            The services found.
        """
        return await self.directory.refresh()

    def select(self, name: str, service_id: str | None = None) -> DiscoveredService:
        """Show the endpoints of the service ``name`` (its instance ``service_id``, default the first).

        Raises:
            KeyError: No such service answered the latest discovery.
        """
        for service in self.directory.services:
            if service.name == name and service_id in (None, service.id):
                self.service_field.value = (service.name, service.id)
                return service
        raise KeyError(f"no service {name} answered the latest discovery; refresh, or start it")

    def open_request(self, endpoint: str) -> Publisher:
        """Open a Publisher below, set to send an example request to ``endpoint`` of the selected service.

        The example is made from the endpoint's request schema, written as JSON and sent msgpack-encoded
        (FastIoT's wire format) or as JSON, as the endpoint says it reads.

        Raises:
            KeyError: No service is selected, or it has no such endpoint.
        """
        if not self.selected:
            raise KeyError("select a service first (browser.select(name))")
        service = self.directory.find(*self.selected)
        example = example_request(service, endpoint)
        [chosen] = [e for e in service.endpoints if e.name == endpoint]
        msgpack = "msgpack" in chosen.metadata.get("content_type", "")
        publisher = Publisher(chosen.subject, self.connection)
        publisher.mode = "request"
        publisher.encoding = "msgpack" if msgpack else "json"
        publisher.payload = json.dumps(example, indent=2)
        if self.publisher is not None:
            self.publisher.close()
        self.publisher = publisher
        self.publisher_box.children = [publisher]
        return publisher

    def _open_chosen(self) -> None:
        if self.endpoint_field.value:
            try:
                self.open_request(self.endpoint_field.value)
            except KeyError as e:
                self.status_view.value = f"<span style='color:#c62828'>{html.escape(str(e))}</span>"

    def _on_service_chosen(self, change: dict[str, Any]) -> None:
        value = change["new"]
        self.selected = tuple(value) if value else ()
        self._render(self.directory.services)

    def _render(self, services: list[DiscoveredService]) -> None:
        self.error = self.directory.error
        when = f"{len(services)} service{'s' if len(services) != 1 else ''}"
        if self.error:
            when += f" — <span style='color:#c62828'>{html.escape(self.error)}</span>"
        self.status_view.value = when
        selected = tuple(self.selected) if self.selected else None
        self.table_view.value = _table_html(services, selected)  # type: ignore[arg-type]
        options = [(f"{s.name} · {s.id}", (s.name, s.id)) for s in services]
        keep = self.service_field.value
        with self.service_field.hold_trait_notifications():
            self.service_field.options = options
            self.service_field.value = keep if any(v == keep for _, v in options) else None
        current = next((s for s in services if (s.name, s.id) == selected), None)
        self.detail_view.value = _detail_html(current) if current else ""
        names = [e.name for e in current.endpoints] if current else []
        if list(self.endpoint_field.options) != names:
            self.endpoint_field.options = names
        self.request_button.disabled = not names

    def _on_task_error(self, exc: BaseException, what: str) -> None:
        self.status_view.value = (
            f"<span style='color:#c62828'>{html.escape(what)} failed: {html.escape(str(exc))}</span>"
        )

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until the actions clicked so far are done (tests, scripts)."""
        await self._tasks.wait(timeout)

    def close(self) -> None:
        """Stop discovering and close the view (and the Publisher it opened)."""
        if "directory" not in self.__dict__:  # __init__ failed (ipywidgets closes on __del__)
            return
        self.directory.on_change(self._render, remove=True)
        self._tasks.cancel_all()
        if loop_is_running():
            self._tasks.spawn(self.directory.stop(), what="stop discovering")
        close_widgets(*self.children)
        super().close()

    async def aclose(self) -> None:
        """Close the view and wait until the directory has stopped."""
        self.close()
        await self.directory.stop()

    def __repr__(self) -> str:
        return f"<ServiceBrowser {len(self.directory.services)} services>"
