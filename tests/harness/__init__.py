"""Test machinery that is not shipped: the worker-process fleet and throw-away servers.

* :mod:`tests.harness.fleet`: worker processes running a workload against one store.
* :mod:`tests.harness.redis_server`, :mod:`tests.harness.redis_cluster`,
  :mod:`tests.harness.postgres_server`: ``redis-server``, Redis Cluster / Sentinel
  and PostgreSQL on free loopback ports.

The system tests and ``python -m benchmarks`` (run from the repository root) use them.
"""
