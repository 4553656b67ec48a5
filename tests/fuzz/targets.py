"""Fuzz targets: one function per parser, ``target(data: bytes) -> None``.

Each feeds arbitrary bytes to one parser and states its invariant: the parser returns a
value or raises one of *our* errors (``MailtoolError``; ``ValueError`` where the API says
so), never anything else; where an encoder exists, what it encodes parses back to the
same value. Used by the hypothesis tests, the corpus replay and ``tools/fuzz.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from mailtool.errors import MailtoolError

Target = Callable[[bytes], None]


def _cuts(data: bytes) -> list[bytes]:
    """Split ``data`` at positions taken from its own first byte (varied chunking)."""
    step = (data[0] % 7) + 1 if data else 1
    return [data[i:i + step] for i in range(0, len(data), step)]


def smtp_replies(data: bytes) -> None:
    """SMTP reply lines through the session (with EHLO parsing) in any chunking."""
    from mailtool.protocol.smtp.session import SMTPSession, parse_ehlo

    session = SMTPSession()
    session.command("EHLO", "fuzz.test")
    for _ in range(20):
        session.command("NOOP")
    try:
        for line in data.split(b"\n"):
            event = session.receive_line(line + b"\n")
            if event is not None and event.command == "EHLO":
                caps = parse_ehlo(event.reply)
                caps.auth_mechanisms  # noqa: B018 - must not raise
                caps.size_limit  # noqa: B018
    except MailtoolError:
        pass


def pop3_responses(data: bytes) -> None:
    """POP3 status lines and multi-line bodies for each kind of command, any chunking."""
    from mailtool.protocol.pop3.session import (
        Line,
        NeedData,
        POP3Session,
        parse_capa,
        parse_list,
        parse_uidl,
    )

    session = POP3Session()
    for cmd in (("CAPA",), ("LIST",), ("UIDL",), ("RETR", "1"), ("TOP", "1", "0"), ("STAT",)):
        session.send_command(*cmd)
    lines: list[bytes] = []
    try:
        for piece in _cuts(data):
            session.receive_data(piece)
            while True:
                event = session.next_event()
                if isinstance(event, NeedData):
                    break
                if isinstance(event, Line):
                    lines.append(event.line)
    except MailtoolError:
        pass
    for parse in (parse_capa, parse_list, parse_uidl):
        try:
            parse(lines)
        except MailtoolError:
            pass


def imap_responses(data: bytes) -> None:
    """IMAP responses (lexer, parser, literals) through the session, any chunking."""
    from mailtool.protocol.imap.session import IMAPSession, NeedData

    session = IMAPSession()
    try:
        session.command("CAPABILITY")
        for piece in _cuts(data):
            session.receive_data(piece)
            while not isinstance(session.next_event(), NeedData):
                pass
    except MailtoolError:
        pass


def imap_structures(data: bytes) -> None:
    """ENVELOPE and BODYSTRUCTURE builders over whatever list the lexer makes of ``data``."""
    from mailtool.protocol.imap.lexer import Lexer
    from mailtool.protocol.imap.parser import bodystructure_from, envelope_from

    try:
        value = Lexer([b"(" + data.replace(b"\r", b"").replace(b"\n", b"") + b")"], []).value()
    except MailtoolError:
        return
    for build in (envelope_from, bodystructure_from):
        try:
            build(value)
        except MailtoolError:
            pass


def imap_utf7(data: bytes) -> None:
    """Modified UTF-7: decode raises ValueError only; decode(encode(x)) == x."""
    from mailtool.protocol.imap.utf7 import decode, encode

    try:
        text = decode(data)
    except ValueError:
        text = None
    if text is not None:
        assert decode(encode(text)) == text
    name = data.decode("utf-8", "replace")
    assert decode(encode(name)) == name


def addresses_and_headers(data: bytes) -> None:
    """Compose: header guard, --header splitting, address lists, a message's headers."""
    from mailtool.compose import MessageSource, parse_addresses, split_header

    text = data.decode("utf-8", "replace")
    try:
        name, value = split_header(text)
        assert ":" not in name and "\n" not in value and "\r" not in value
    except MailtoolError:
        pass
    for _name, addr in parse_addresses([text]):
        assert isinstance(addr, str)
    try:
        source = MessageSource.from_bytes(data)
        source.header_values("to")
        source.strip_bcc()
        # Bcc never survives into what is sent (RFC 5322 3.6.3; the s-nail/Exim lesson).
        assert not any(line.lower().startswith((b"bcc:", b"resent-bcc:"))
                       for line in source.header_block.split(b"\n"))
    except MailtoolError:
        pass


def sasl_challenges(data: bytes) -> None:
    """A SASL challenge is base64 or our ProtocolError; encode/decode round-trips."""
    from mailtool.protocol import sasl

    try:
        sasl.decode(data)
    except MailtoolError:
        pass
    assert sasl.decode(sasl.encode(data)) == data


TARGETS: dict[str, Target] = {
    "smtp-replies": smtp_replies,
    "pop3-responses": pop3_responses,
    "imap-parser": imap_responses,
    "imap-structures": imap_structures,
    "imap-utf7": imap_utf7,
    "compose-headers": addresses_and_headers,
    "sasl": sasl_challenges,
}
