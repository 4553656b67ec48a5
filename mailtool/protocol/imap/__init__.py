"""IMAP4rev1/rev2 client: pure lexer/parser, sans-I/O session, client over the transport.

See ``client.py`` for the API.
"""
