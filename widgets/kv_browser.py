"""KeyValueBrowser: JetStream key-value buckets, their keys, current values and each key's history.

A thin view over :class:`fastiot.history.Bucket`: pick a bucket to see its keys (kept current by a
live watch of the bucket), pick a key to see its value (decoded like message payloads) and its
history, newest first, with what changed between consecutive revisions
(:func:`fastiot.payloads.diff`). A bucket deleted while shown is reported, and the list goes on.

Example:
    >>> from fastiot_widgets import KeyValueBrowser
    >>> kv = KeyValueBrowser("settings")            # doctest: +SKIP
    >>> kv                                          # shows it  # doctest: +SKIP
    >>> await kv.show_key("press_1.threshold")      # or click the key  # doctest: +SKIP
    >>> kv.history[-1]["changes"]                   # doctest: +SKIP
    [['threshold', '56.0', '70.0']]
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

import ipywidgets as widgets
import traitlets

from fastiot._tasks import BackgroundTasks, loop_is_running
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import BucketNotFoundError
from fastiot.history import Bucket, BucketWatch, KeyEntry, WatchState
from fastiot.payloads import MISSING, diff, to_text

from . import _loop_bound as ui
from ._common import ConnectionStatus, follow_connection, plural, pre_html, resolve_connection
from ._history_parts import Coalesced

__all__ = ["MAX_KEY_OPTIONS", "MAX_VALUE_CHARS", "KeyValueBrowser", "changes_between"]

MAX_KEY_OPTIONS = 1_000  # keys listed at once; the filter box finds the others
MAX_VALUE_CHARS = 20_000  # a value's text is cut here (the entry itself holds all of it)
_CELL_CHARS = 200  # a changed field's old / new text in the history table
_RENDER_INTERVAL = 0.2  # a burst of changes (a bucket's initial values) gives one render


def _text(value: Any, limit: int = _CELL_CHARS) -> str:
    return "(absent)" if value is MISSING else to_text(value, max_chars=limit)


def _when(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC" if value else "-"


def changes_between(older: KeyEntry | None, newer: KeyEntry) -> list[tuple[str, str, str]]:
    """What ``newer`` changed against the revision before it, as ``(field, old text, new text)`` rows.

    A delete is one row ``("", value, "(deleted)")``; a value set after none (or after a delete) is
    ``("", "(absent)", value)``; fields are compared with :func:`fastiot.payloads.diff`.

    Example:
        >>> changes_between(old_entry, new_entry)  # doctest: +SKIP
        [('threshold', '56.0', '70.0')]
    """
    if newer.is_deleted:
        before = _text(older.value) if older is not None and not older.is_deleted else "(absent)"
        return [("", before, f"({newer.operation.lower()}d)" if newer.operation == "PURGE" else "(deleted)")]
    if older is None or older.is_deleted:
        return [("", "(absent)", _text(newer.value if newer.error is None else newer.raw))]
    return [(path, _text(old), _text(new)) for path, old, new in diff(older.value, newer.value)]


class KeyValueBrowser(widgets.VBox):
    """Browse key-value buckets: keys, current values and each key's history with the changes.

    Args:
        bucket: The bucket to show first (a name); the first one on the server if None.
        connection: The broker connection; ``None`` means the workbench connection.

    From code: ``await kv.refresh()``, ``await kv.show_bucket(name)``, ``await kv.show_key(key)``; the
    traitlets hold what is shown. Clicks do the same in the background; failures show in :attr:`error`.
    """

    buckets = traitlets.List(traitlets.Unicode(), help="The key-value buckets on the server, by name.")
    bucket = traitlets.Unicode("", help="The bucket shown; '' if none.")
    bucket_keys = traitlets.List(
        traitlets.Unicode(), help="The keys of the bucket shown that have a value, kept current (live)."
    )
    key = traitlets.Unicode("", help="The key shown; '' if none.")
    value = traitlets.Unicode("", help="The key's current value as text (decoded like a payload).")
    revision = traitlets.Int(0, help="The revision of the value shown (0: none).")
    history = traitlets.List(
        traitlets.Dict(),
        help="The key's revisions, oldest first: revision, created, operation, value (text) and changes "
        "(field, old, new) against the revision before.",
    )
    watching = traitlets.Unicode(
        "stopped", help="The live watch of the bucket: stopped, watching or deleted."
    )
    notice = traitlets.Unicode("", help="What happened, e.g. that the bucket shown was deleted.")
    error = traitlets.Unicode("", help="Why the last action failed; '' if it did not.")

    def __init__(self, bucket: str | None = None, *, connection: NatsBrokerConnection | None = None) -> None:
        self._connection: NatsBrokerConnection | None = connection
        self._tasks: BackgroundTasks = BackgroundTasks(self._on_task_error)
        self._watch: BucketWatch | None = None
        self._wanted: str | None = bucket
        self._updating: bool = False
        self._render_soon = Coalesced(
            self._render_changes, _RENDER_INTERVAL, self._background, "show the changes"
        )
        self._history_stale: bool = False

        self.connection_status = ConnectionStatus()
        self.bucket_select = ui.Select(options=[], rows=8, layout=widgets.Layout(width="14em"))
        self.refresh_button = ui.Button(icon="refresh", tooltip="List the buckets again")
        self.refresh_button.layout.width = "auto"
        self.info_view = widgets.HTML()
        self.key_filter = ui.Text(placeholder="filter keys", layout=widgets.Layout(width="18em"))
        self.key_select = ui.Select(options=[], rows=12, layout=widgets.Layout(width="18em"))
        self.value_view = widgets.HTML()
        self.history_view = widgets.HTML()
        self.notice_view = widgets.HTML()
        self.error_view = widgets.HTML()

        self.refresh_button.on_click(lambda _b: self._click(self.refresh(), "list the buckets"))
        self.bucket_select.observe(self._on_bucket_chosen, names="value")
        self.key_select.observe(self._on_key_chosen, names="value")
        self.key_filter.observe(lambda _c: self._render_keys(), names="value")
        super().__init__(
            children=[
                widgets.HBox(
                    [widgets.HTML("<b>Key-value buckets</b>"), self.refresh_button, self.connection_status]
                ),
                widgets.HBox(
                    [
                        widgets.VBox([self.bucket_select, self.info_view]),
                        widgets.VBox([self.key_filter, self.key_select]),
                        widgets.VBox(
                            [self.value_view, self.history_view], layout=widgets.Layout(flex="1 1 auto")
                        ),
                    ]
                ),
                self.notice_view,
                self.error_view,
            ]
        )
        follow_connection(self.connection_status, connection, self._tasks)
        if not loop_is_running():
            return
        self._tasks.spawn(self.refresh(), what="list the buckets")

    async def _conn(self) -> NatsBrokerConnection:
        conn = await resolve_connection(self._connection)
        self.connection_status.attach(conn)
        return conn

    # -- buckets ---------------------------------------------------------------------------------------

    async def refresh(self) -> list[str]:
        """List the buckets again (and show the one chosen, or the first); returns their names."""
        names = [b.name for b in await Bucket.list(connection=await self._conn())]
        self.buckets = names
        if self._wanted and self._wanted not in names:
            self._say(f"there is no key-value bucket {self._wanted!r} on this server")
            self._wanted = None
        wanted = self._wanted if self._wanted in names else self.bucket if self.bucket in names else None
        self._updating = True
        try:
            self.bucket_select.options = names
            self.bucket_select.value = wanted or (names[0] if names else None)
        finally:
            self._updating = False
        if self.bucket_select.value != self.bucket or self._watch is None:
            await self.show_bucket(self.bucket_select.value)
        if not names:
            self.info_view.value = "<i>no key-value buckets on this server</i>"
        return names

    def _on_bucket_chosen(self, change: dict[str, Any]) -> None:
        if not self._updating:
            self._wanted = change["new"]
            self._click(self.show_bucket(change["new"]), "show the bucket")

    async def show_bucket(self, name: str | None) -> None:
        """Show the bucket ``name``: its keys, followed live; None shows nothing.

        Raises:
            BucketNotFoundError: There is no such bucket (the browser says so and lists the others).
        """
        await self._stop_watch()
        self.bucket, self.bucket_keys = name or "", []
        await self.show_key(None)
        if not name:
            self.info_view.value = ""
            return
        self._wanted = name
        conn = await self._conn()
        bucket = Bucket(name, connection=conn)
        try:
            info = await bucket.info()
            watch = bucket.watch(connection=conn)
            watch.on_change(self._on_change)
            watch.on_state_change(self._on_watch_state)
            self._watch = await watch.start()
        except BucketNotFoundError:
            self._gone(name)
            raise
        self.watching = self._watch.state.value
        ttl = f", values kept {info.ttl}" if info.ttl else ""
        self.info_view.value = (
            f"<b>{html.escape(name)}</b><br>{plural(info.values, 'entry', 'entries')}, "
            f"{plural(info.history, 'revision')} kept per key{ttl}"
        )
        self._render_keys()

    async def _stop_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.on_change(self._on_change, remove=True)
            watch.on_state_change(self._on_watch_state, remove=True)
            await watch.stop()
        self.watching = "stopped"

    def _on_watch_state(self, state: WatchState) -> None:
        self.watching = state.value
        if state is WatchState.DELETED:
            self._gone(self.bucket)
            self._click(self.refresh(), "list the buckets")

    def _gone(self, name: str) -> None:
        if name != self.bucket:
            return
        self._say(f"bucket {name!r} was deleted; it is no longer on the server")
        self._wanted = None
        self.bucket, self.bucket_keys, self.key, self.value, self.revision, self.history = (
            "",
            [],
            "",
            "",
            0,
            [],
        )
        self.info_view.value = ""
        self._render_keys()
        self._render_value(None)

    def _on_change(self, entry: KeyEntry) -> None:
        # Called for every change, the bucket's initial values included: render at most every 0.2 s.
        if entry.key == self.key:
            self._history_stale = True
        self._render_soon.request()

    async def _render_changes(self) -> None:
        self._render_keys()
        if self._history_stale and self.key:
            await self.show_key(self.key)

    # -- keys ------------------------------------------------------------------------------------------

    def _render_keys(self) -> None:
        watch = self._watch
        self.bucket_keys = sorted(watch.entries) if watch is not None else []
        text = self.key_filter.value.strip()
        matching = [k for k in self.bucket_keys if text in k] if text else self.bucket_keys
        shown = matching[:MAX_KEY_OPTIONS]
        if self.key and self.key not in shown:
            shown = [self.key, *shown]
        self._updating = True
        try:
            self.key_select.options = shown
            self.key_select.value = self.key or None
        finally:
            self._updating = False
        more = len(matching) - min(len(matching), MAX_KEY_OPTIONS)
        self.key_select.tooltip = f"{more:,} more; type in the filter to find them" if more else ""

    def _on_key_chosen(self, change: dict[str, Any]) -> None:
        if not self._updating:
            self._click(self.show_key(change["new"]), "show the key")

    async def show_key(self, key: str | None) -> list[dict[str, Any]]:
        """Show ``key``'s current value and its history; returns the history rows (oldest first)."""
        self._history_stale = False
        if not key or not self.bucket:
            self.key, self.value, self.revision, self.history = "", "", 0, []
            self._render_value(None)
            return []
        self.key = key
        bucket = Bucket(self.bucket, connection=await self._conn())
        try:
            entries = await bucket.history(key)
        except BucketNotFoundError:
            self._gone(bucket.name)
            raise
        if self.key != key:  # another key was chosen meanwhile
            return []
        rows = []
        for i, entry in enumerate(entries):
            rows.append(
                {
                    "revision": entry.revision,
                    "created": entry.created,
                    "operation": entry.operation,
                    "value": "" if entry.is_deleted else self._value_text(entry),
                    "changes": [list(c) for c in changes_between(entries[i - 1] if i else None, entry)],
                }
            )
        self.history = rows
        current = entries[-1] if entries and not entries[-1].is_deleted else None
        self.value = self._value_text(current) if current is not None else ""
        self.revision = current.revision if current is not None else 0
        self._render_value(current)
        return rows

    @staticmethod
    def _value_text(entry: KeyEntry) -> str:
        if entry.error is not None:
            return f"{entry.raw[:64].hex()}{'…' if len(entry.raw) > 64 else ''}  ({entry.error})"
        return to_text(entry.value, max_chars=MAX_VALUE_CHARS)

    def _render_value(self, current: KeyEntry | None) -> None:
        if not self.key:
            self.value_view.value = self.history_view.value = ""
            return
        if current is None:
            head = f"<b>{html.escape(self.key)}</b> <i>has no value (deleted)</i>"
        else:
            head = (
                f"<b>{html.escape(self.key)}</b> <span style='color:#757575'>revision {current.revision}, "
                f"{_when(current.created)}</span>"
            )
        self.value_view.value = head + pre_html(self.value, max_height="14em")
        rows = []
        for row in reversed(self.history):  # newest first, as `nats kv history` lists them last
            changes = "<br>".join(
                f"<code>{html.escape(path or 'value')}</code>: {html.escape(old)} &rarr; {html.escape(new)}"
                for path, old, new in row["changes"]
            )
            rows.append(
                f"<tr><td style='text-align:right'>{row['revision']}</td><td>{_when(row['created'])}</td>"
                f"<td>{row['operation']}</td><td>{changes or '<i>no change</i>'}</td></tr>"
            )
        self.history_view.value = (
            "<table style='font-size:90%'><tr><th>rev</th><th>when</th><th>op</th>"
            f"<th style='text-align:left'>changes</th></tr>{''.join(rows)}</table>"
        )

    # -- plumbing --------------------------------------------------------------------------------------

    def _say(self, notice: str) -> None:
        self.notice = notice
        self.notice_view.value = f"<span style='color:#1565c0'>{html.escape(notice)}</span>"

    def _background(self, coro: Any, what: str) -> None:
        self._tasks.spawn(coro, what=what)

    def _click(self, coro: Any, what: str) -> None:
        self.error = ""
        self.error_view.value = ""
        self._tasks.spawn(coro, what=what)

    def _on_task_error(self, exc: BaseException, what: str) -> None:
        if isinstance(exc, BucketNotFoundError):
            return  # the notice says that the bucket is gone
        self.error = f"{what} failed: {type(exc).__name__}: {exc}"
        self.error_view.value = pre_html(self.error, color="#c62828", max_height="10em")

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until the work started by clicks and changes so far is done."""
        await self._tasks.wait(timeout)

    async def stop(self) -> None:
        """Stop following the bucket (the view stays as it is)."""
        await self._stop_watch()

    def close(self) -> None:
        """Stop the live watch and close the views."""
        if "_tasks" not in self.__dict__:  # __init__ failed (ipywidgets closes on __del__)
            return
        self._tasks.cancel_all()
        if self._watch is not None:
            try:
                self._tasks.spawn(self._stop_watch(), what="stop watching")
            except RuntimeError:
                pass  # no loop any more: the watch went with it
        self.connection_status.close()
        super().close()
