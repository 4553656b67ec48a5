"""Modified UTF-7 for IMAP mailbox names (RFC 3501 section 5.1.3), both ways.

Printable ASCII except ``&`` stands for itself; ``&`` is written ``&-``; every other run of
characters is UTF-16BE, base64 with ``,`` instead of ``/`` and no padding, between ``&`` and
``-``. Decoding is strict (a malformed name raises ``ValueError``) so that the caller can
fall back to showing the raw name; ``decode_mailbox`` does that fallback.
"""

from __future__ import annotations


def _b64(chunk: str) -> str:
    import base64  # here, not at import: most mailbox names are ASCII

    raw = chunk.encode("utf-16-be")
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")


def encode(name: str) -> str:
    """A mailbox name as modified UTF-7 (pure ASCII)."""
    out: list[str] = []
    pending: list[str] = []
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            if pending:
                out.append("&" + _b64("".join(pending)) + "-")
                pending = []
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    if pending:
        out.append("&" + _b64("".join(pending)) + "-")
    return "".join(out)


def decode(name: str | bytes) -> str:
    """Modified UTF-7 -> text.

    Raises:
        ValueError: not valid modified UTF-7 (8-bit bytes, bad base64, unterminated shift,
            a shifted run that encodes printable ASCII or is not whole UTF-16).
    """
    text = name.decode("ascii") if isinstance(name, bytes) else name  # may raise ValueError
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ord(ch) < 0x20 or ord(ch) > 0x7E:
            raise ValueError("character outside printable ASCII in modified UTF-7")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise ValueError("unterminated base64 run in modified UTF-7")
        run = text[i + 1 : end]
        i = end + 1
        if not run:
            out.append("&")
            continue
        if "/" in run or "=" in run:
            raise ValueError("invalid base64 character in modified UTF-7")
        b64 = run.replace(",", "/")
        b64 += "=" * (-len(b64) % 4)
        try:
            import base64

            raw = base64.b64decode(b64, validate=True)
        except ValueError as exc:  # binascii.Error is a ValueError
            raise ValueError("invalid base64 in modified UTF-7") from exc
        if len(raw) % 2:
            raise ValueError("odd number of bytes in modified UTF-7 run")
        decoded = raw.decode("utf-16-be")  # UnicodeDecodeError is a ValueError
        if any(0x20 <= ord(c) <= 0x7E for c in decoded):
            raise ValueError("modified UTF-7 run encodes printable ASCII")
        out.append(decoded)
    return "".join(out)


def decode_mailbox(raw: bytes, *, utf8: bool = False) -> str:
    """A mailbox name from the wire as text: UTF-8 when UTF8=ACCEPT is on, else modified
    UTF-7, falling back to UTF-8 (invalid bytes replaced) for names that are neither."""
    if not utf8:
        try:
            return decode(raw)
        except ValueError:
            pass
    return raw.decode("utf-8", "replace")


def encode_mailbox(name: str, *, utf8: bool = False) -> bytes:
    """A mailbox name for the wire (UTF-8 when UTF8=ACCEPT is on, else modified UTF-7)."""
    if utf8:
        return name.encode("utf-8")
    return encode(name).encode("ascii")
