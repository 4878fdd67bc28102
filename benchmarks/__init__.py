"""zoom-s2s benchmarks: ``python -m benchmarks [--quick] [--only NAMES] [--output DIR] [--check]``.

Every figure is a ratio against a baseline measured in the same run, on the
same machine, or a count checked against a target; each benchmark runs in a
fresh process. Nothing is asserted, so a slow or noisy machine never fails a
build; ``--check`` compares a run with ``published.json`` (:mod:`benchmarks.published`).
See ``benchmarks/README.rst``.

Each benchmark module exposes ``NAME``, ``TITLE`` and ``run(ctx)``. This
package's own import is light: spawned worker processes import it.
"""
