"""``orderdb bench``: the SQL API under pgbench beside references measured in the same run
(:mod:`orderdb.bench.runner`, PgBouncer in :mod:`orderdb.bench.pgbouncer`), and the events
benchmark (:mod:`orderdb.bench.events`)."""

from orderdb.bench.runner import (
    COMPARISONS,
    GOALS,
    WORKLOADS,
    BenchConfig,
    BenchError,
    BenchReport,
    bench_dir,
    render_script,
    run_benchmark,
)

__all__ = [
    "COMPARISONS",
    "GOALS",
    "WORKLOADS",
    "BenchConfig",
    "BenchError",
    "BenchReport",
    "bench_dir",
    "render_script",
    "run_benchmark",
]
