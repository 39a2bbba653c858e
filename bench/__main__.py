"""``python -m bench [--quick] [--out DIR] [--only KEY ...]``: see :mod:`bench.cli`."""

from bench.cli import main

raise SystemExit(main())
