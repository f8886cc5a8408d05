"""The ``orderdb`` command line (click). Each concern registers its commands in its own module."""

from orderdb.cli import admin, bench, core, demo, events, integrations, ops, tracking, web  # noqa: F401  (registers commands)
from orderdb.cli.base import main

__all__ = ["main"]
