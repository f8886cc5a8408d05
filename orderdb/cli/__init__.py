"""The ``orderdb`` command line (click). Each concern registers its commands in its own module."""

from orderdb.cli import (  # noqa: F401  (registers commands)
    admin,
    bench,
    cluster,
    core,
    demo,
    events,
    integrations,
    ops,
    orders_import,
    tracking,
    web,
    wms,
)
from orderdb.cli.base import main

__all__ = ["main"]
