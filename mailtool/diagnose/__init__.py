"""``diagnose``: checks that yield structured findings (see ``findings``)."""
