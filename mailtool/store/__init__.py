"""Local storage: Maildir and mbox writers and atomically replaced state files.

Every writer here follows the same rule: data is on disk (fsynced) before anyone is told it
is stored, and a crash at any moment leaves the old state or the new one, never a mix.
"""
