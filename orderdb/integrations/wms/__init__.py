"""WMS connectors: how orderdb sends fulfillment commands to a warehouse management system.

When an order becomes ``dispatched`` in a warehouse that has a connector configured
(``orderdb warehouses set-wms``), the same transaction queues a command in
``orderdb.wms_commands`` (``create``; ``update`` when the order is amended; ``cancel`` when it is
cancelled). ``orderdb wms-dispatch`` claims due commands and hands each one to the warehouse's
connector as a :class:`WmsCommand`. The connector answers :class:`WmsAccepted`, or raises
:class:`WmsUnavailable` (retried with backoff) or :class:`WmsRejected` (dead-lettered at once).

Connectors are found through package entry points in the group ``orderdb.wms``: the entry point's
name is the connector name given to ``set-wms``, its value a factory called with the warehouse's
connector settings (a mapping) that returns the connector. Two ship with orderdb:

- ``http`` (:mod:`orderdb.integrations.wms.http`): the JSON-over-HTTP protocol of
  docs/wms-protocol.md, which a WMS vendor can implement;
- ``sim`` (:mod:`orderdb.integrations.wms.sim`): a simulated WMS for the demo and the tests.

A third-party connector is a package of its own::

    # pyproject.toml of the package "orderdb-wms-acme"
    [project.entry-points."orderdb.wms"]
    acme = "orderdb_wms_acme:factory"

The WMS reports progress back through ``POST /hooks/wms`` (docs/integrations.md), not through the
connector's return value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, runtime_checkable

ENTRY_POINT_GROUP = "orderdb.wms"

COMMAND_KINDS = ("create", "update", "cancel")


@dataclass(frozen=True)
class WmsCommand:
    """One command of ``orderdb.wms_commands`` as a connector sends it."""

    command_id: int  # sent as the idempotency key "orderdb-<command_id>"
    kind: str  # 'create' | 'update' | 'cancel'
    warehouse_id: int
    order_id: int
    order_no: str
    wms_order_id: str | None  # the WMS's id once a create was accepted (update/cancel carry it)
    payload: Mapping[str, Any]  # the order document built by SQL
    attempt: int  # 1 for the first send

    @property
    def idempotency_key(self) -> str:
        """The key the WMS dedupes a resent command by: ``orderdb-<command_id>``."""
        return idempotency_key(self.command_id)


@dataclass(frozen=True)
class WmsAccepted:
    """The WMS took the command."""

    wms_order_id: str | None  # create: the WMS's order id (required); update/cancel: may repeat it
    response: Mapping[str, Any]  # what the WMS answered (stored on the command, size-bounded)


class WmsError(Exception):
    """A send failed; retried with backoff."""


class WmsUnavailable(WmsError):
    """Network error, timeout, 5xx, 408, 409 (the same key still being processed), 429:
    transient. ``retry_after`` is the delay in seconds the WMS asked for (``Retry-After``), when
    it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WmsRejected(WmsError):
    """The WMS refused the command for good (4xx other than 408/409/429, or a documented
    permanent error code): the command is dead-lettered at once, no retries."""


@runtime_checkable
class WmsConnector(Protocol):
    """What orderdb needs of a WMS integration."""

    name: str

    def send(self, command: WmsCommand) -> WmsAccepted:
        """Delivers one command. Must be idempotent on ``command.command_id`` (a command is
        resent after a timeout whose answer was lost)."""
        ...

    def close(self) -> None:
        """Finishes outstanding work (bounded) and releases connections."""
        ...


WmsFactory = Callable[[Mapping[str, Any]], WmsConnector]


def idempotency_key(command_id: int) -> str:
    """``orderdb-<command_id>``: the ``Idempotency-Key`` a command is sent with."""
    return f"orderdb-{command_id}"


def _entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def available() -> list[str]:
    """The connector names that installed packages provide (entry point names), sorted."""
    return [ep.name for ep in _entry_points()]


def load(name: str, config: Mapping[str, Any]) -> WmsConnector:
    """Instantiates the connector registered under ``name`` with ``config`` (the warehouse's
    connector settings plus ``warehouse_id`` and ``dsn``). Raises LookupError naming the available
    connectors when no installed package provides ``name``, TypeError when the factory returns
    something that is not a connector, ValueError when ``config`` is unusable (naming the key)."""
    for ep in _entry_points():
        if ep.name == name:
            factory = ep.load()
            connector = factory(dict(config))
            if not isinstance(connector, WmsConnector):
                raise TypeError(
                    f"entry point {ep.name} = {ep.value} returned {type(connector).__name__}, "
                    "which lacks send/close or name"
                )
            return connector
    raise LookupError(
        f"no WMS connector {name!r} is installed (group {ENTRY_POINT_GROUP}); "
        f"available: {', '.join(available()) or 'none'}"
    )


__all__ = [
    "COMMAND_KINDS",
    "ENTRY_POINT_GROUP",
    "WmsAccepted",
    "WmsCommand",
    "WmsConnector",
    "WmsError",
    "WmsFactory",
    "WmsRejected",
    "WmsUnavailable",
    "available",
    "idempotency_key",
    "load",
]
