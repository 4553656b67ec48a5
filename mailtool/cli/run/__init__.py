"""The bodies of the commands that also run without Click (``send``, ``pop-fetch``,
``imap-sync``): one module per command, ``run(app, conn=..., **params)`` each.

The Click declarations in ``cli/commands/`` call these after parsing; the fast path in
``cli/fastparse.py`` calls them straight from its own parse of the same options (the table
in ``fast_table.py``, generated from the Click tree). Nothing here imports Click, rich or
``typing`` at module level: cron runs these thousands of times a day.
"""
