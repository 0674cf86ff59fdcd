"""`make bench`: courier against an HTTP ceiling, Procrastinate and PgQueuer.

`python -m bench --help` lists the options; docs/benchmarks.md holds the last results.
`python -m bench.compare ceiling courier:2:64:64 pgqueuer:2:128:50 --repeat 2` runs a
few chosen configurations side by side in minutes, to check one change.
"""
