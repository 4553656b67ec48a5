"""The bodies of the commands that also run without Click (``send``, ``pop-fetch``,
``imap-sync``, ``queue run``, ``queue list``): one module per command, ``run(app,
conn=..., **params)`` each; a group's sub-commands share the group's module, one function
each named by both words (``queue.queue_run``), ``conn`` only for connection options.

The Click declarations in ``cli/commands/`` call these after parsing; the fast path in
``cli/fastparse.py`` calls them straight from its own parse of the same options (the table
in ``fast_table.py``, generated from the Click tree). Nothing here imports Click, rich or
``typing`` at module level: cron runs these thousands of times a day.
"""
