"""Line ends on disk: mail travels with CRLF, Maildir and mbox files hold LF.

Every writer of local mail goes through ``CRLFToLF`` so POP3 and IMAP mirrors look the same
as Dovecot's own Maildir, mbsync's and fetchmail's (only CRLF pairs become LF; a bare CR is
kept, so nothing but the line-end convention changes).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator


class CRLFToLF:
    """Incremental CRLF -> LF; a CR at the end of a chunk waits for the next one."""

    def __init__(self) -> None:
        self._cr = False

    def feed(self, chunk: bytes) -> bytes:
        if self._cr:
            chunk = b"\r" + chunk
            self._cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._cr = True
        return chunk.replace(b"\r\n", b"\n")

    def finish(self) -> bytes:
        if self._cr:
            self._cr = False
            return b"\r"
        return b""


def to_lf(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``CRLFToLF`` over an iterable of chunks."""
    conv = CRLFToLF()
    for chunk in chunks:
        out = conv.feed(chunk)
        if out:
            yield out
    tail = conv.finish()
    if tail:
        yield tail


def wire_size(path: str, *, chunk: int = 1 << 20) -> int:
    """The size a stored message has on the wire, where every line ends in CRLF.

    Works for files stored with LF (each LF counts two) and with CRLF (unchanged), so sizes
    announced by a server (RFC822.SIZE, LIST) can be compared with local files.
    """
    total = 0
    prev_cr = False
    with open(path, "rb") as handle:
        while data := handle.read(chunk):
            total += len(data) + data.count(b"\n") - data.count(b"\r\n")
            if prev_cr and data.startswith(b"\n"):
                total -= 1
            prev_cr = data.endswith(b"\r")
    return total
