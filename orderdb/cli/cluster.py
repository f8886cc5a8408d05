"""CLI commands: ``orderdb cluster init|status|map-warehouse|sync-reference`` (docs/scaling.md)."""

from __future__ import annotations

import sys

import click

from orderdb.cli.base import (
    EXIT_BAD_INPUT,
    EXIT_ERROR,
    EXIT_RETRY_LATER,
    INT4,
    dsn_option,
    echo_json,
    err_console,
    get_dsn,
    handle_errors,
    main,
    print_error,
    print_table,
    read_secret,
)
from orderdb.cluster import setup
from orderdb.config import redact

#: the shards' role password for the proxy's user mapping, when the shards ask for one
SHARD_PASSWORD_ENV = "ORDERDB_CLUSTER_SHARD_PASSWORD"  # noqa: S105 (a variable name)


@main.group("cluster")
def cluster_group() -> None:
    """One orderdb over several PostgreSQL databases: a PL/Proxy proxy in front of shards."""


def _fail(exc: setup.ClusterError) -> None:
    print_error(str(exc))
    sys.exit(EXIT_BAD_INPUT)


@cluster_group.command("init")
@click.option("--proxy", "proxy_dsn", required=True, help="The proxy database's DSN.")
@click.option(
    "--shard",
    "shard_dsns",
    multiple=True,
    required=True,
    help="A shard database's DSN (repeat; shard numbers follow this order, from 0).",
)
@click.option(
    "--shard-role",
    default=setup.DEFAULT_SHARD_ROLE,
    show_default=True,
    help="The shards' login role for the proxy (created: no superuser, orderdb_app and "
    "orderdb_ingest rights only).",
)
@click.option(
    "--id-stride",
    type=click.IntRange(1, 1024),
    default=setup.DEFAULT_ID_STRIDE,
    show_default=True,
    help="Ids of shard k are k + 1 modulo this: the most shards the cluster can have.",
)
@click.option(
    "--shard-password-file",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help=f"Read the shard role's password from this file's first line (else ${SHARD_PASSWORD_ENV}"
    ", else the role has none: libpq's password file or trust on the shards' side).",
)
@handle_errors
def init_cmd(
    proxy_dsn: str,
    shard_dsns: tuple[str, ...],
    shard_role: str,
    id_stride: int,
    shard_password_file: str | None,
) -> None:
    """Migrate the shards, prepare the proxy (PL/Proxy) and record the cluster.

    Running it again with the same shards changes nothing; shards given after the recorded
    ones are added. Needs a superuser (or the plproxy extension already created) on the proxy,
    and a role that may create roles on the shards.
    """
    password = read_secret(shard_password_file, False, SHARD_PASSWORD_ENV)
    try:
        setup.init(
            proxy_dsn,
            list(shard_dsns),
            shard_role=shard_role,
            id_stride=id_stride,
            password=password,
            progress=lambda line: err_console.print(line, markup=False, highlight=False),
        )
    except setup.ClusterError as exc:
        _fail(exc)
    click.echo(f"cluster ready: proxy {redact(proxy_dsn)}, {len(shard_dsns)} shards")


@cluster_group.command("status")
@dsn_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
@handle_errors
def status_cmd(ctx: click.Context, sub_dsn: str | None, as_json: bool) -> None:
    """The shards (reachable through the proxy, schema revision, id space, reference data,
    warehouses) and the warehouse map. --dsn is the proxy's. Reference data: the tables whose
    content differs from the first shard's (write a change to every shard). Exits 75 when a
    shard, or the proxy itself, cannot be reached."""
    try:
        st = setup.status(get_dsn(ctx, sub_dsn))
    except setup.ClusterError as exc:
        _fail(exc)
        return
    if as_json:
        echo_json(st.as_json())
    else:
        print_table(
            f"cluster (schema {st.proxy_schema_revision}, id stride {st.id_stride}, "
            f"shard role {st.shard_role})",
            [
                "shard",
                "dsn",
                "reachable",
                "schema",
                "id space",
                "reference data",
                "warehouses",
                "orders",
            ],
            [
                (
                    s.shard,
                    s.dsn,
                    "yes" if s.reachable else f"no: {s.error}",
                    s.schema_revision or "",
                    {True: "ok", False: "WRONG", None: ""}[s.id_space_ok],
                    ""
                    if s.reference_drift is None
                    else (
                        "same"
                        if not s.reference_drift
                        else "DIFFERS: " + ", ".join(s.reference_drift)
                    ),
                    s.warehouses_mapped,
                    "" if s.orders is None else s.orders,
                )
                for s in st.shards
            ],
        )
    if not all(s.reachable for s in st.shards):
        sys.exit(75)


@cluster_group.command("map-warehouse")
@dsn_option
@click.argument("warehouse", type=INT4)
@click.argument("shard", type=click.IntRange(0, 1023))
@click.pass_context
@handle_errors
def map_warehouse_cmd(ctx: click.Context, sub_dsn: str | None, warehouse: int, shard: int) -> None:
    """Pin WAREHOUSE to SHARD (its number: position in init's --shard list, from 0).

    An unmapped warehouse is otherwise placed on first use on the shard with the fewest
    warehouses. A warehouse that has stock or orders on another shard is not moved (exit 2).
    """
    try:
        changed = setup.map_warehouse(get_dsn(ctx, sub_dsn), warehouse, shard)
    except setup.ClusterError as exc:
        _fail(exc)
    click.echo(f"warehouse {warehouse} {'mapped to' if changed else 'stays on'} shard {shard}")


@cluster_group.command("sync-reference")
@dsn_option
@click.option(
    "--from-shard",
    type=click.IntRange(0, 1023),
    default=0,
    show_default=True,
    help="The shard whose reference data the others get.",
)
@click.option(
    "--table",
    "tables",
    multiple=True,
    help="Only this reference table (repeatable; default: every table cluster status compares).",
)
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
@handle_errors
def sync_reference_cmd(
    ctx: click.Context,
    sub_dsn: str | None,
    from_shard: int,
    tables: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
) -> None:
    """Copy the reference tables of one shard (--from-shard, default 0) to every shard whose
    copy differs (the tables cluster status names). --dsn is the proxy's.

    Each drifted shard is repaired in one transaction: rows inserted, updated to the source's
    values, and the rows the source has not deleted (a webhook subscription with its
    deliveries); then its digests are compared again (rolled back if they still differ). The
    shards are reached with the DSNs the proxy records. Exit 0: every shard is the source's
    (or would be, with --dry-run); 1: a shard's transaction failed (rolled back: nothing of it
    changed); 75: a shard could not be reached."""
    try:
        result = setup.sync_reference(
            get_dsn(ctx, sub_dsn),
            from_shard=from_shard,
            tables=list(tables) or None,
            dry_run=dry_run,
            progress=None
            if as_json
            else lambda line: err_console.print(line, markup=False, highlight=False),
        )
    except setup.ClusterError as exc:
        _fail(exc)
        return
    if as_json:
        echo_json(
            {
                "from_shard": from_shard,
                "dry_run": dry_run,
                "shards": [
                    {
                        "shard": s.shard,
                        "error": s.error,
                        "still_differs": s.still_differs,
                        "tables": [
                            {
                                "table": t.table,
                                "inserted": t.inserted,
                                "updated": t.updated,
                                "deleted": t.deleted,
                            }
                            for t in s.tables
                        ],
                    }
                    for s in result
                ],
            }
        )
    else:
        print_table(
            f"reference data from shard {from_shard}"
            + (" (dry run: nothing changed)" if dry_run else ""),
            ["shard", "table", "inserted", "updated", "deleted", "result"],
            [
                (s.shard, t.table, t.inserted, t.updated, t.deleted, _sync_result(s, dry_run))
                for s in result
                for t in s.tables
            ]
            + [(s.shard, "", "", "", "", _sync_result(s, dry_run)) for s in result if not s.tables],
        )
    if any(s.error and s.error.startswith("not reachable") for s in result):
        sys.exit(EXIT_RETRY_LATER)
    if any(s.error for s in result):
        sys.exit(EXIT_ERROR)


def _sync_result(s: setup.ShardSync, dry_run: bool) -> str:
    if s.error:
        return s.error
    return "would be copied" if dry_run else "copied"
