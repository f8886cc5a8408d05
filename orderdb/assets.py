"""The files orderdb ships beside its Python code: ``sql/``, ``migrations/`` and ``bench/``.

In a repository checkout they are folders at the root; a built wheel carries them inside the
package as ``orderdb/_sql``, ``orderdb/_migrations`` and ``orderdb/_bench`` (pyproject.toml,
``force-include``). Readers ask :func:`asset_dir` and never build the path themselves.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def asset_dir(name: str) -> Path:
    """The ``name`` folder (``sql``, ``migrations`` or ``bench``): the wheel's copy inside the
    package, else the repository's; FileNotFoundError when neither exists."""
    for candidate in (PACKAGE_DIR / f"_{name}", PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"orderdb: cannot find the {name}/ folder (looked in {PACKAGE_DIR})")
