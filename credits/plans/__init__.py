"""Plans: recurring allowances (with rollover) and spend limits per window.

``calendar.py`` is the UTC calendar arithmetic (the twin of
``lua/include/calendar.lua``); ``allowances.py`` and ``spend_limits.py`` are
the operations; the renewal itself runs inside the scripts, with the upkeep.
"""
