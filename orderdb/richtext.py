"""Terminal output: Rich when it is installed, plain text when it is not, and data never read as
console markup.

Rich reads ``[...]`` in a printed string as markup: a location ``[/x]`` raises MarkupError and a
SKU ``[bold]SKU`` loses its brackets. Every value that comes from data goes through one of these:

- ``esc(value)`` inside a markup string: ``console.print(f"[bold]{esc(order_no)}[/bold]")``;
- ``plain(value)`` as a table cell or any renderable: a ``Text`` that is never parsed.

A line without any markup of its own is printed with ``markup=False``.

Rich comes with the ``ops``, ``bench`` and ``web`` extras; a client-only install (``pip install
orderdb``) still runs every command that needs no extra (``orderdb migrate``, ``orderdb order
...``): :class:`Console`, :class:`Table` and :class:`Text` are then small plain-text stand-ins
that drop the markup (escaped brackets stay) and print tables as aligned columns.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

# Rich's escape rule (rich.markup.escape): a backslash before "[" that would open a tag
_TAG_LIKE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")
# a markup tag, possibly escaped, for the plain-text stand-in
_TAG = re.compile(r"(\\*)\[([a-z#/@][^\[\]]*)\]", re.IGNORECASE)


def _plain_escape(markup: str) -> str:
    """rich.markup.escape's rule, for when Rich is not installed."""

    def fix(match: re.Match[str]) -> str:
        backslashes, text = match.groups()
        return f"{backslashes}{backslashes}\\{text}"

    markup = _TAG_LIKE.sub(fix, markup)
    if markup.endswith("\\") and not markup.endswith("\\\\"):
        return markup + "\\"
    return markup


def _strip_markup(text: str) -> str:
    """``text`` without its markup tags; escaped brackets become brackets."""

    def fix(match: re.Match[str]) -> str:
        backslashes, body = match.groups()
        if len(backslashes) % 2:  # escaped: the bracket is text
            return backslashes[: len(backslashes) // 2] + f"[{body}]"
        return backslashes[: len(backslashes) // 2]

    return _TAG.sub(fix, text)


class PlainText:
    """A piece of text shown as it is (Rich's ``Text`` without Rich)."""

    def __init__(self, text: str = "", style: str = "") -> None:
        self.plain = text
        self.style = style

    def __str__(self) -> str:
        return self.plain


class PlainTable:
    """Columns and rows printed as aligned plain text (Rich's ``Table`` without Rich)."""

    def __init__(self, title: str | None = None, **_: Any) -> None:
        self.title = title
        self.columns: list[str] = []
        self.rows: list[list[str]] = []

    def add_column(self, header: str, **_: Any) -> None:
        self.columns.append(header)

    def add_row(self, *cells: Any, **_: Any) -> None:
        self.rows.append([_cell(c) for c in cells])

    def lines(self) -> list[str]:
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
        out = [self.title] if self.title else []
        for row in [self.columns, *self.rows]:
            out.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
        return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value.plain if isinstance(value, PlainText) else _strip_markup(str(value))


class PlainConsole:
    """Prints strings (markup dropped), texts and tables as plain text (Rich's ``Console``
    without Rich)."""

    is_terminal = False

    def __init__(self, stderr: bool = False, **_: Any) -> None:
        self._stderr = stderr

    @property
    def file(self) -> IO[str]:
        return sys.stderr if self._stderr else sys.stdout

    def print(self, *objects: Any, markup: bool = True, **_: Any) -> None:
        parts: list[str] = []
        for obj in objects:
            if isinstance(obj, PlainTable):
                parts.append("\n".join(obj.lines()))
            elif isinstance(obj, PlainText):
                parts.append(obj.plain)
            else:
                parts.append(_strip_markup(str(obj)) if markup else str(obj))
        print(" ".join(parts), file=self.file)


try:
    from rich.console import Console
    from rich.markup import escape as _escape
    from rich.table import Table
    from rich.text import Text

    HAVE_RICH = True
except ImportError:  # pragma: no cover - the client-only install (tests/test_packaging.py)
    Console = PlainConsole  # type: ignore[misc,assignment]
    Table = PlainTable  # type: ignore[misc,assignment]
    Text = PlainText  # type: ignore[misc,assignment]
    _escape = _plain_escape  # type: ignore[assignment]
    HAVE_RICH = False


@contextmanager
def progress_bar(
    label: str, total: int, *, console: Any, transient: bool = False
) -> Iterator[Callable[[], None]]:
    """A progress bar (label, bar, done/total, elapsed) on ``console``; yields the function that
    advances it by one. Without Rich (or not on a terminal, where Rich draws nothing) it shows
    nothing."""
    if not HAVE_RICH:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(f"[bold]{esc(label)}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda: progress.advance(task)


def esc(value: object) -> str:
    """``value`` (None as "") for a Rich markup string: its ``[`` read literally."""
    return "" if value is None else _escape(str(value))


def plain(value: object, style: str = "") -> Text:
    """``value`` (None as "") as a ``Text``: shown exactly as it is, never parsed as markup."""
    return Text("" if value is None else str(value), style=style)


__all__ = ["HAVE_RICH", "Console", "Table", "Text", "esc", "plain", "progress_bar"]
