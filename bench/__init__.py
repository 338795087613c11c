"""Benchmarks (not tests): `python -m bench.throughput | bench.scaling | bench.vectors`.

Each writes bench/results/<name>.json (every number, the machine and its load) and
bench/results/<name>.md (the tables, to paste into the README). See bench/README.md.
"""
