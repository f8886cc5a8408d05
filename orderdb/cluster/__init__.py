"""One orderdb over several PostgreSQL databases: a PL/Proxy proxy in front of shards
(docs/scaling.md). :mod:`orderdb.cluster.setup` prepares and inspects a cluster;
:mod:`orderdb.cluster.routing` says where each public function runs and generates the SQL."""
