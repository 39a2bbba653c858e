"""Credit lots: every credit belongs to a grant with its own terms.

``terms.py`` checks a new lot's terms; ``rules.py`` is the drawdown order in
Python (the twin of ``lua/include/lots.lua``); ``records.py`` turns stored lots
into :class:`~credits.models.Lot`; ``ops.py`` reads and voids lots;
``sweep.py`` starts and expires lots of users who never come back;
``replay.py`` rebuilds every lot from the log alone.
"""
