"""Progress of the long commands (``orderdb migrate``, ``orderdb maintain``): one line per step
on stderr as it happens, with --progress or when stderr is a terminal. stdout (and --json) do
not change."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

progress_option = click.option(
    "--progress/--no-progress",
    default=None,
    help="Report each step on stderr as it happens (default: when stderr is a terminal).",
)


def progress_printer(progress: bool | None) -> Callable[[str], None] | None:
    """The stderr reporter for a command's --progress/--no-progress value (None: on when
    stderr is a terminal); None when progress is off."""
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None

    def report(line: str) -> None:
        click.echo(line, err=True)

    return report
