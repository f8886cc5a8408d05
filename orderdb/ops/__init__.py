"""Operations: the terminal monitor and the Prometheus exporter over orderdb_ops."""
