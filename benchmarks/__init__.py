"""zoom-s2s benchmarks: ``python -m benchmarks [--quick] [--only NAME[,NAME]] [--output DIR]``.

Every figure is a ratio against a baseline measured in the same run, on the
same machine, or a count checked against a target. Targets are printed with
their figure and whether they were met; nothing is asserted, so a slow or noisy
machine never fails a build. See ``benchmarks/README.rst``.

Modules, one per benchmark (each exposes ``NAME``, ``TITLE`` and ``run(ctx)``):

* :mod:`benchmarks.hot_path`: warm ``get_token()`` per store vs a dict read.
* :mod:`benchmarks.cold_stampede`: P processes x C coroutines on a cold store.
* :mod:`benchmarks.fleet_soak`: a fleet on short-lived tokens for T seconds.
* :mod:`benchmarks.peer`: the same workloads through Authlib.
* :mod:`benchmarks.api_overhead`: ``ZoomClient.get_user`` vs raw aiohttp.
* :mod:`benchmarks.memory`: RSS growth over many calls and refreshes.

This package's own import is light: spawned worker processes import it.
"""
