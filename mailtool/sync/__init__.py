"""One-way IMAP -> Maildir mirror (``mailtool imap-sync``).

``paths`` maps folder names to safe Maildir++ directories, ``state`` keeps what we hold
of each folder durably (snapshot + journal, keyed on UIDVALIDITY), ``plan`` decides the
changes (pure), ``engine`` gathers facts from the server and applies the plan, and
``source`` adapts the IMAP client to what the engine needs.
"""
