"""Carrier plugins: the interface a carrier integration implements, and their discovery.

A carrier plugin is a Python object with a carrier ``code`` (the code of
``orderdb.carrier_status_map`` its status codes are mapped under) and three methods:
``create_waybill``, ``query_tracking`` and ``cancel``. Plugins are found through package entry
points in the group ``orderdb.carriers``: the entry point's name is the carrier code, its value a
factory called with the carrier's configuration (a mapping) that returns the plugin. So a new
carrier is a package of its own::

    # pyproject.toml of the package "orderdb-carrier-acme"
    [project.entry-points."orderdb.carriers"]
    ACME = "orderdb_carrier_acme:AcmeCarrier"

``orderdb poll-carriers`` asks every due shipment's plugin for its events
(``query_tracking``) and records them with ``orderdb.record_tracking_event``; duplicates are
harmless (the database dedupes by event id, else by tracking number, time and status).
docs/integrations.md has a complete example package.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import EntryPoint, entry_points
from typing import Any, NoReturn, Protocol, runtime_checkable

ENTRY_POINT_GROUP = "orderdb.carriers"

log = logging.getLogger(__name__)


class CarrierError(Exception):
    """A carrier call failed (network, carrier outage, rate limit): polling backs off."""


class CarrierUnavailable(CarrierError):
    """The carrier did not answer or answered with a server error; retry later."""


class CarrierRejected(CarrierError):
    """The carrier refused the request for good (bad credentials, an invalid waybill or
    address): retrying the same request will not help. ``code`` is the carrier's own error code
    when it gave one."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Address:
    """Where a parcel goes (or comes from)."""

    name: str
    line1: str
    city: str
    postal_code: str
    country: str = "CN"
    phone: str | None = None
    line2: str | None = None


@dataclass(frozen=True)
class WaybillRequest:
    """What a carrier needs to accept a parcel."""

    order_id: int
    warehouse_id: int
    recipient: Address
    sender: Address | None = None
    weight_grams: int = 1000
    reference: str | None = None  # shown on the label; default the order number
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Waybill:
    """A carrier's acceptance of a parcel: its tracking number (and label, when it gives one)."""

    carrier: str
    tracking_number: str
    label_url: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrackingEvent:
    """One carrier scan, as ``orderdb.record_tracking_event`` takes it.

    ``status`` is the carrier's own code (mapped by ``orderdb.carrier_status_map``);
    ``event_time`` must be timezone-aware; ``event_id`` is the carrier's id of the scan when it
    has one (the strongest dedupe key).
    """

    tracking_number: str
    event_time: datetime
    status: str
    location: str | None = None
    description: str | None = None
    event_id: str | None = None
    payload: Mapping[str, Any] | None = None


@runtime_checkable
class CarrierPlugin(Protocol):
    """What orderdb needs of a carrier integration."""

    code: str

    def create_waybill(self, request: WaybillRequest) -> Waybill:
        """Books a parcel with the carrier and returns its tracking number."""
        ...

    def query_tracking(self, tracking_number: str) -> Sequence[TrackingEvent]:
        """Every scan the carrier reports for a tracking number so far (any order, repeats
        allowed). Raises CarrierError when the carrier cannot answer now."""
        ...

    def cancel(self, tracking_number: str) -> bool:
        """Cancels a waybill that has not been picked up; False when it is too late."""
        ...


class NotConfigured:
    """A carrier plugin whose section is missing from the carriers config (its factory got an
    empty section): every call raises CarrierRejected saying which section to add (``keys``: its
    keys, as the message lists them), so ``poll-carriers`` shows it under the carriers that
    failed, and loading it logs nothing for the many installations that do not use the carrier.
    """

    def __init__(self, code: str, keys: str) -> None:
        self.code = code
        self.keys = keys

    def _refuse(self) -> NoReturn:
        raise CarrierRejected(
            f'{self.code} is not configured: add a "{self.code}" section ({self.keys}) to '
            "the carriers config (poll-carriers --config; docs/carriers.md)"
        )

    def create_waybill(self, request: WaybillRequest) -> Waybill:
        self._refuse()

    def query_tracking(self, tracking_number: str) -> Sequence[TrackingEvent]:
        self._refuse()

    def cancel(self, tracking_number: str) -> bool:
        self._refuse()


CarrierFactory = Callable[[Mapping[str, Any]], CarrierPlugin]


def _entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def available() -> list[str]:
    """The carrier codes that installed packages provide (entry point names), sorted."""
    return [ep.name for ep in _entry_points()]


def load(code: str, config: Mapping[str, Any] | None = None) -> CarrierPlugin:
    """Instantiates the plugin registered under ``code``. Raises LookupError when no installed
    package provides it, TypeError when the factory returns something that is not a plugin."""
    for ep in _entry_points():
        if ep.name == code:
            factory = ep.load()
            plugin = factory(dict(config or {}))
            if not isinstance(plugin, CarrierPlugin):
                raise TypeError(
                    f"entry point {ep.name} = {ep.value} returned {type(plugin).__name__}, "
                    "which lacks create_waybill/query_tracking/cancel or code"
                )
            if plugin.code != code:
                raise TypeError(
                    f"entry point {ep.name} returned a plugin with code {plugin.code!r}; "
                    "the entry point name must be the carrier code"
                )
            return plugin
    raise LookupError(
        f"no carrier plugin {code!r} is installed (group {ENTRY_POINT_GROUP}); "
        f"available: {', '.join(available()) or 'none'}"
    )


def load_all(
    config: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    only: Sequence[str] | None = None,
) -> dict[str, CarrierPlugin]:
    """Every installed plugin (or those in ``only``), each with its section of ``config``.
    A plugin that fails to load is logged and left out (the others keep working)."""
    plugins: dict[str, CarrierPlugin] = {}
    config = config or {}
    for code in available():
        if only is not None and code not in only:
            continue
        try:
            plugins[code] = load(code, config.get(code))
        except Exception:  # a broken third-party package must not stop the poller
            log.exception("carrier plugin %s failed to load", code)
    return plugins


__all__ = [
    "ENTRY_POINT_GROUP",
    "Address",
    "CarrierError",
    "CarrierFactory",
    "CarrierPlugin",
    "CarrierRejected",
    "CarrierUnavailable",
    "NotConfigured",
    "TrackingEvent",
    "Waybill",
    "WaybillRequest",
    "available",
    "load",
    "load_all",
]
