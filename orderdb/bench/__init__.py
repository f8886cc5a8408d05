"""``orderdb bench``: the SQL API under pgbench beside pgbench's own reference transactions
(:mod:`orderdb.bench.runner`), and the events benchmark (:mod:`orderdb.bench.events`)."""

from orderdb.bench.runner import (
    GOALS,
    WORKLOADS,
    BenchConfig,
    BenchError,
    BenchReport,
    bench_dir,
    run_benchmark,
)

__all__ = [
    "GOALS",
    "WORKLOADS",
    "BenchConfig",
    "BenchError",
    "BenchReport",
    "bench_dir",
    "run_benchmark",
]
