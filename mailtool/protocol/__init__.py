"""Our own SMTP, POP3 and IMAP clients, sharing transport, SASL and the reply model.

Nothing in this package imports click, rich, keyring or dnspython.
"""
