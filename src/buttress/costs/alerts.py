"""Cost alerts and where they go. Sending never blocks or fails the call that raised the alert."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Literal, Protocol
from urllib.parse import urlsplit

from buttress.types import Value

if TYPE_CHECKING:
    import httpx

AlertKind = Literal["soft_limit", "hard_limit", "runaway"]
AlertMetric = Literal["spend_usd", "calls"]

_log = logging.getLogger("buttress.costs.alerts")


class Alert(Value):
    """One alert. ``value`` crossed ``threshold`` (both in ``metric`` units) for ``scope``
    (``"global"``, ``"feature:NAME"``, ``"key:ID"``, ``"tag:NAME"``) during ``period``
    (``"2025-01-31"``, ``"2025-01"`` or, for runaways, ``"last 5m"``)."""

    kind: AlertKind
    scope: str
    period: str
    value: float
    threshold: float
    metric: AlertMetric = "spend_usd"
    budget: str | None = None
    detail: str = ""
    at: float = 0.0  # wall-clock epoch seconds

    def describe(self) -> str:
        amount = (f"${self.value:.6f} >= ${self.threshold:.6f}" if self.metric == "spend_usd"
                  else f"{self.value:g} calls >= {self.threshold:g}")
        budget = f" budget={self.budget}" if self.budget else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.kind} scope={self.scope} period={self.period}{budget} {amount}{detail}"


class AlertSink(Protocol):
    def send(self, alert: Alert) -> None:
        """Deliver or schedule the alert; must return at once and never raise."""
        ...


class LogAlertSink:
    """One warning log line per alert."""

    def __init__(self, logger: logging.Logger = _log) -> None:
        self._logger = logger

    def send(self, alert: Alert) -> None:
        self._logger.warning("cost alert: %s", alert.describe())


class WebhookAlertSink:
    """POSTs each alert as JSON, fire-and-forget on the running event loop.

    The URL is never logged (webhook URLs often embed a token); failures are logged with the host.
    Call ``drain`` on shutdown to wait for alerts still in flight. Alerts sent from a thread with
    no running loop go to ``loop`` when one was given, and are logged and dropped otherwise.
    """

    def __init__(self, url: str, client: httpx.AsyncClient, *, timeout_s: float = 5.0,
                 loop: asyncio.AbstractEventLoop | None = None,
                 logger: logging.Logger = _log) -> None:
        self._url = url
        self._host = urlsplit(url).hostname or "<webhook>"
        self._client = client
        self._timeout_s = timeout_s
        self._loop = loop
        self._logger = logger
        self._pending: set[asyncio.Future[None]] = set()

    def send(self, alert: Alert) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._loop is None or self._loop.is_closed():
                self._logger.warning("cost alert webhook to %s dropped (no event loop): %s",
                                     self._host, alert.describe())
                return
            self._loop.call_soon_threadsafe(self._schedule, alert)
            return
        if loop is self._loop or self._loop is None:
            self._schedule(alert)
        else:
            self._loop.call_soon_threadsafe(self._schedule, alert)

    def _schedule(self, alert: Alert) -> None:
        task = asyncio.ensure_future(self._post(alert))
        self._pending.add(task)  # keep a reference so the task is not collected mid-flight
        task.add_done_callback(self._pending.discard)

    async def _post(self, alert: Alert) -> None:
        try:
            response = await self._client.post(self._url, json=alert.model_dump(mode="json"),
                                               timeout=self._timeout_s)
        except Exception as exc:  # any failure is logged: alerts must never break a call
            self._logger.warning("cost alert webhook to %s failed: %s: %s", self._host,
                                 type(exc).__name__, alert.describe())
            return
        if response.status_code >= 400:
            self._logger.warning("cost alert webhook to %s answered HTTP %d: %s", self._host,
                                 response.status_code, alert.describe())

    async def drain(self) -> None:
        """Wait for every alert already scheduled on this loop to be delivered or to fail."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)


class FanOutAlertSink:
    """Sends each alert to every sink (a log line and, when configured, a webhook)."""

    def __init__(self, *sinks: AlertSink) -> None:
        self.sinks = sinks

    def send(self, alert: Alert) -> None:
        for sink in self.sinks:
            sink.send(alert)
