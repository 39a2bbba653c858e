"""One module per row of the results table; :mod:`bench.registry` lists them in order."""
