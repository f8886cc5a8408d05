"""Data in Rich output: text from carriers, warehouses and users is never read as console markup.

Rich reads ``[...]`` in a printed string as markup: a location ``[/x]`` raises MarkupError and a
SKU ``[bold]SKU`` loses its brackets. Every value that comes from data goes through one of these:

- ``esc(value)`` inside a markup string: ``console.print(f"[bold]{esc(order_no)}[/bold]")``;
- ``plain(value)`` as a table cell or any renderable: a ``Text`` that is never parsed.

A line without any markup of its own is printed with ``markup=False``.
"""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text


def esc(value: object) -> str:
    """``value`` (None as "") for a Rich markup string: its ``[`` read literally."""
    return "" if value is None else escape(str(value))


def plain(value: object, style: str = "") -> Text:
    """``value`` (None as "") as a ``Text``: shown exactly as it is, never parsed as markup."""
    return Text("" if value is None else str(value), style=style)


__all__ = ["esc", "plain"]
