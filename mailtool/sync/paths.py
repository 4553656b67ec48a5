"""Server folder names -> local Maildir++ paths, safe against hostile names.

Layout (Maildir++, as Dovecot and mbsync's ``SubFolders Maildir++`` lay it out)::

    DIR/                    INBOX itself (cur/ new/ tmp/ at the root)
    DIR/.Sent/              folder "Sent"
    DIR/.Lists.python/      folder "Lists/python" (hierarchy flattened with '.')
    DIR/.Entwürfe/          folder "Entw&APw-rfe" (modified UTF-7 on the wire, UTF-8 here)
    DIR/.a%2Eb/             folder "a.b" when the server's delimiter is '/'

Every folder but INBOX is one directory directly below ``DIR`` whose name is a dot
followed by the folder's levels joined with dots (levels come from splitting the
decoded name at the server's hierarchy delimiter; a server without a delimiter gives
one level). Inside a level these characters are written ``%XX`` (hex of the UTF-8
byte): ``%`` itself, ``.``, ``/``, ``\\``, ``:``, ``~``, every control character (NUL
included) and DEL. So the mapping is reversible, a level can never turn into ``.``
or ``..``, and the result is always one path component: no name, however hostile
(``../x``, ``a/../../b``, ``/etc``, NUL bytes), can leave ``DIR`` (mbsync had exactly
this bug, CVE-2021-20247). An empty level (``a//b``, a trailing delimiter) is
written ``%`` followed by nothing, which the escaping never produces otherwise.

Names that would exceed NAME_MAX (255 bytes) are cut on a character boundary and end
in ``~`` plus 16 hex digits of the SHA-256 of the full escaped name, so two long
names still map to two directories. ``INBOX`` is matched case-insensitively (RFC
3501 §5.1); ``INBOX/Sub`` becomes ``.INBOX.Sub``, as Dovecot does.

Per-folder sync state lives in files without a leading dot inside the folder's
directory (``mailtool-sync.state`` and ``.journal``); folder directories always
start with a dot, so no folder name can collide with them.
"""

from __future__ import annotations

import os

from mailtool.errors import CantCreateError, DataError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from pathlib import Path

#: Longest file name most file systems accept (bytes).
NAME_MAX = 255
#: Hex digits of the hash that ends a shortened name.
_HASH_HEX = 16
_ESCAPED = frozenset("%./\\:~")

#: Marker file Maildir++ puts in every sub-folder (Courier, Dovecot and mutt look for it).
FOLDER_MARKER = "maildirfolder"


def is_inbox(name: str) -> bool:
    return name.upper() == "INBOX"


def _escape_level(level: str) -> str:
    if not level:
        return "%"
    out = []
    for char in level:
        if char in _ESCAPED or ord(char) < 0x20 or ord(char) == 0x7F or not char.isprintable():
            out.append("".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass")))
        else:
            out.append(char)
    return "".join(out)


def _unescape_level(text: str) -> str:
    if text == "%":
        return ""
    raw = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%":
            raw += bytes.fromhex(text[i + 1 : i + 3])
            i += 3
        else:
            raw += text[i].encode("utf-8")
            i += 1
    return raw.decode("utf-8", "surrogatepass")


def _shorten(name: str) -> str:
    encoded = name.encode("utf-8", "surrogatepass")
    if len(encoded) <= NAME_MAX:
        return name
    import hashlib

    digest = hashlib.sha256(encoded).hexdigest()[:_HASH_HEX]
    budget = NAME_MAX - 1 - _HASH_HEX
    cut = encoded[:budget].decode("utf-8", "ignore")  # drop a split character
    return f"{cut}~{digest}"


def folder_dirname(name: str, delimiter: str | None) -> str:
    """The directory name (one path component) for server folder ``name``; '' for INBOX.

    Args:
        name: the decoded folder name (UTF-8 text, not modified UTF-7).
        delimiter: the server's hierarchy delimiter for it (None when flat).

    Raises:
        DataError: the name is empty.
    """
    if not name:
        raise DataError("the server listed a folder with an empty name", step="LIST")
    if is_inbox(name):
        return ""
    levels = name.split(delimiter) if delimiter else [name]
    if is_inbox(levels[0]):
        levels[0] = "INBOX"
    result = _shorten("." + ".".join(_escape_level(level) for level in levels))
    # Belt and braces: the escaping above makes these impossible.
    assert result not in (".", "..") and "/" not in result and "\0" not in result
    return result


def folder_name(dirname: str, delimiter: str | None) -> str | None:
    """The folder name a directory stands for (inverse of ``folder_dirname``).

    Returns None for shortened names (the hash is one-way) and for anything that is not
    a folder directory.
    """
    if dirname == "":
        return "INBOX"
    if not dirname.startswith(".") or dirname in (".", "..") or "~" in dirname:
        return None
    try:
        levels = [_unescape_level(level) for level in dirname[1:].split(".")]
    except ValueError:
        return None
    if len(levels) > 1 and not delimiter:
        return None
    return (delimiter or "").join(levels)


def folder_path(root: Path | str, name: str, delimiter: str | None) -> Path | str:
    """``root`` joined with ``folder_dirname`` (a ``str`` for a ``str`` root, so a caller
    need not import pathlib); refuses a symlink in the folder's place.

    Raises:
        DataError: empty name.
        CantCreateError: the folder's place is a symbolic link (we never follow one out
            of the tree).
    """
    dirname = folder_dirname(name, delimiter)
    if not dirname:
        return root
    path = os.path.join(root, dirname) if isinstance(root, str) else root / dirname
    if dirname and os.path.islink(path):
        raise CantCreateError(f"{path} is a symbolic link; refusing to write through it",
                              step=f"folder {name}")
    return path
