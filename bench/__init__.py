"""nbfeat's benchmark suite: `make bench` (or `python -m bench.run [--quick] [--only NAME]`).

Every figure is a ratio of two timings taken in the same run, interleaved batch by batch where
possible, and summarised by a median: these machines are shared and noisy. Results go to
`bench/results.json` and the table in `docs/benchmarks.md`.

>>> python -m bench.run --quick --only forward      # doctest: +SKIP
"""
