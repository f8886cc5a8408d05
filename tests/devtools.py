"""Developer tools behind ``make pgtap`` and ``make lint``: run the pgTAP suite with pg_prove, and
plpgsql_check every PL/pgSQL function. ``python -m tests.devtools pgtap|plpgsql-check``.

Both work on a scratch database (migrated, then dropped) on ``ORDERDB_TEST_DSN``'s server; pgtap
falls back to an embedded throwaway PostgreSQL 18 when it is unset. plpgsql_check needs the Debian
package ``postgresql-15-plpgsql-check`` and so runs on the local PostgreSQL 15 service by default
(``ORDERDB_LINT_DSN`` to point it elsewhere).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from orderdb.server import migrate

REPO = Path(__file__).resolve().parent.parent
PGTAP_DIR = REPO / "tests" / "pgtap"
LINT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_PROVE_HINT = "apt-get install libtap-parser-sourcehandler-pgtap-perl postgresql-15-pgtap"


def with_dbname(dsn: str, dbname: str) -> str:
    params = {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    params["dbname"] = dbname
    return make_conninfo("", **params)


@contextmanager
def scratch_database(admin_dsn: str, *, extensions: tuple[str, ...] = ()) -> Iterator[str]:
    """A new migrated database on ``admin_dsn``'s server with ``extensions``; dropped on exit."""
    name = f"orderdb_scratch_{secrets.token_hex(4)}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = with_dbname(admin_dsn, name)
    try:
        migrate.migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for ext in extensions:
                conn.execute(
                    sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext))
                )
        yield dsn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def pgtap_files() -> list[Path]:
    return sorted(PGTAP_DIR.rglob("*.test.sql"))


def pg_prove_command(
    dsn: str, files: list[Path], psql: str | None = None, *, verbose: bool = False
) -> list[str]:
    """pg_prove argv for ``files`` on ``dsn`` (psql: the bundled one on the embedded server).

    A folder among ``files`` is searched recursively (``-r``) for ``.sql`` files; ``verbose``
    prints every file's TAP stream (``--verbose``)."""
    pg_prove = shutil.which("pg_prove")
    if pg_prove is None:
        raise click.ClickException(f"pg_prove is not installed: {PG_PROVE_HINT}")
    params = conninfo_to_dict(dsn)
    argv = [pg_prove, "--ext", ".sql", "--failures", "--comments"]
    if any(Path(f).is_dir() for f in files):
        argv.append("-r")
    if verbose:
        argv.append("--verbose")
    if psql:
        argv += ["--psql-bin", psql]
    for flag, key in (("-h", "host"), ("-p", "port"), ("-U", "user"), ("-d", "dbname")):
        if params.get(key):
            argv += [flag, str(params[key])]
    return argv + [str(f) for f in files]


# a line of pg_prove --verbose output that is TAP (a plan, a test line, a comment, a blank) or
# pg_prove's own (a file's header, its verdict, the summary); anything else is a row a pgTAP file
# printed: setup output mixed into the TAP stream
_TAP_OR_PG_PROVE = re.compile(
    r"(not )?ok \d+( .*)?|1\.\.\d+|#.*|\s*|ok|\S+\.sql \.+ ?|All tests successful\."
    r"|Files=\d+, Tests=\d+, .*|Result: PASS"
)


def tap_noise(verbose_output: str) -> list[str]:
    """The lines of a passing ``pg_prove --verbose`` run that are neither TAP nor pg_prove's own,
    as ``file: line``: rows printed by setup statements of the pgTAP files (they should print
    nothing)."""
    noise: list[str] = []
    current = ""
    for line in verbose_output.splitlines():
        if re.fullmatch(r"\S+\.sql \.+ ?", line):
            current = line.split(" ", 1)[0]
        elif not _TAP_OR_PG_PROVE.fullmatch(line):
            noise.append(f"{current}: {line}")
    return noise


@click.group()
def cli() -> None:
    """orderdb developer tools."""


@cli.command("pgtap")
@click.argument("files", nargs=-1, type=click.Path(exists=True, path_type=Path))
def pgtap_cmd(files: tuple[Path, ...]) -> None:
    """Run the pgTAP files (default: every tests/pgtap/**/*.test.sql) with pg_prove."""
    chosen = list(files) or pgtap_files()
    if not chosen:
        raise click.ClickException(f"no pgTAP files under {PGTAP_DIR}")
    with ExitStack() as stack:
        admin = os.environ.get("ORDERDB_TEST_DSN")
        psql = None
        if not admin:
            from orderdb.server import embedded

            if embedded.pgtap_control_path() is None:
                raise click.ClickException(f"pgTAP is not installed: {PG_PROVE_HINT}")
            admin = stack.enter_context(embedded.throwaway()).dsn
            psql = str(embedded.bin_path("psql"))
        try:
            dsn = stack.enter_context(scratch_database(admin, extensions=("pgtap",)))
        except psycopg.errors.FeatureNotSupported as exc:
            raise click.ClickException(f"cannot load pgTAP ({exc}): {PG_PROVE_HINT}") from exc
        except psycopg.errors.UndefinedFile as exc:
            raise click.ClickException(f"cannot load pgTAP ({exc}): {PG_PROVE_HINT}") from exc
        result = subprocess.run(pg_prove_command(dsn, chosen, psql), check=False)
    sys.exit(result.returncode)


PLPGSQL_CHECK_QUERY = """
SELECT p.oid::regprocedure::text AS function, c.level, c.message, c.lineno, c.statement, c.hint
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
  -- a trigger function: checked as the trigger with the most transition tables uses it
  LEFT JOIN LATERAL (SELECT t.tgrelid, t.tgoldtable, t.tgnewtable FROM pg_trigger t
                      WHERE t.tgfoid = p.oid
                      ORDER BY (t.tgoldtable IS NOT NULL)::int + (t.tgnewtable IS NOT NULL)::int
                               DESC, t.oid
                      LIMIT 1) tg ON true
 CROSS JOIN LATERAL plpgsql_check_function_tb(
            p.oid,
            relid => CASE WHEN p.prorettype = 'trigger'::regtype THEN tg.tgrelid ELSE 0 END,
            oldtable => tg.tgoldtable, newtable => tg.tgnewtable,
            extra_warnings => true, other_warnings => true, security_warnings => true) c
 WHERE n.nspname IN ('orderdb', 'orderdb_ops') AND l.lanname = 'plpgsql'
 ORDER BY 1, c.lineno
"""


@cli.command("plpgsql-check")
def plpgsql_check_cmd() -> None:
    """plpgsql_check every PL/pgSQL function of schemas orderdb and orderdb_ops: zero findings."""
    admin = os.environ.get("ORDERDB_LINT_DSN", LINT_DSN)
    try:
        scratch = scratch_database(admin, extensions=("plpgsql_check",))
        with scratch as dsn, psycopg.connect(dsn) as conn:
            rows = conn.execute(PLPGSQL_CHECK_QUERY).fetchall()
            count = conn.execute(
                "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " JOIN pg_language l ON l.oid = p.prolang"
                " WHERE n.nspname IN ('orderdb', 'orderdb_ops') AND l.lanname = 'plpgsql'"
            ).fetchone()
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"cannot reach {admin} for plpgsql_check: {exc}") from exc
    except (psycopg.errors.FeatureNotSupported, psycopg.errors.UndefinedFile) as exc:
        raise click.ClickException(
            f"plpgsql_check is not installed: apt-get install postgresql-15-plpgsql-check ({exc})"
        ) from exc
    for function, level, message, lineno, statement, hint in rows:
        click.echo(
            f"{function}:{lineno}: {level}: {message} [{statement}]"
            + (f" hint: {hint}" if hint else "")
        )
    checked = count[0] if count else 0
    click.echo(f"plpgsql_check: {checked} functions, {len(rows)} findings")
    if rows:
        sys.exit(1)


if __name__ == "__main__":
    cli()
