"""`make bench`: courier against an HTTP ceiling, Procrastinate and PgQueuer.

`python -m bench --help` lists the options; docs/benchmarks.md holds the last results.
"""
