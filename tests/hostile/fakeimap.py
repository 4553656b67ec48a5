"""A small scripted IMAP server for the hostile suite: a normal server whose every command
can be overridden by a hook (a BYE in the middle of a FETCH, a changed UIDVALIDITY, a
folder named ``../../etc``). Good enough for imap-sync, imap-list and imap-show; nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.faults.server import Conn

#: hook(conn, tag, args) -> True when it answered (or ended the session) itself.
Hook = Callable[[Conn, str, str], bool]

CAPS = "IMAP4rev1 AUTH=PLAIN LITERAL+ UIDPLUS ENABLE"


@dataclass
class Folder:
    uidvalidity: int
    messages: dict[int, bytes]  # uid -> raw message (CRLF)
    flags: dict[int, str] = field(default_factory=dict)


@dataclass
class FakeIMAP:
    folders: dict[str, Folder]
    caps: str = CAPS
    greeting: bytes = b"* OK [CAPABILITY " + CAPS.encode() + b"] fake IMAP ready\r\n"
    delimiter: str = "/"
    hooks: dict[str, Hook] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    selected: str | None = None

    def handler(self, c: Conn) -> None:
        c.send(self.greeting)
        while True:
            raw = c.readline()
            literal = re.search(rb"\{(\d+)\+?\}\r\n$", raw)
            while literal:  # LITERAL+ (or a synchronising literal: say go ahead)
                if not raw.endswith(b"+}\r\n"):
                    c.send(b"+ go ahead\r\n")
                raw = raw + c.read_exact(int(literal.group(1))) + c.readline()
                literal = re.search(rb"\{(\d+)\+?\}\r\n$", raw)
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.commands.append(line)
            tag, _, rest = line.partition(" ")
            name, _, args = rest.partition(" ")
            name = name.upper()
            if name == "UID":
                sub, _, args = args.partition(" ")
                name = "UID " + sub.upper()
            hook = self.hooks.get(name)
            if hook is not None and hook(c, tag, args):
                if c.closed:
                    return
                continue
            if not self.answer(c, tag, name, args):
                return

    # -- the well-behaved server ------------------------------------------------------
    def answer(self, c: Conn, tag: str, name: str, args: str) -> bool:
        ok = f"{tag} OK {name} done\r\n".encode()
        if name == "CAPABILITY":
            c.send(f"* CAPABILITY {self.caps}\r\n".encode() + ok)
        elif name in ("LOGIN", "AUTHENTICATE"):
            if name == "AUTHENTICATE" and len(args.split()) == 1:
                c.send(b"+ \r\n")
                c.readline()
            c.send(f"{tag} OK [CAPABILITY {self.caps}] logged in\r\n".encode())
        elif name in ("NOOP", "CHECK", "CLOSE", "UNSELECT"):
            c.send(ok)
        elif name == "ENABLE":
            c.send(b"* ENABLED\r\n" + ok)
        elif name == "ID":
            c.send(b"* ID NIL\r\n" + ok)
        elif name in ("LIST", "LSUB"):
            out = b""
            for folder in self.folders:
                out += f'* {name} () "{self.delimiter}" {self.quote(folder)}\r\n'.encode()
            c.send(out + ok)
        elif name == "STATUS":
            box = self.folders.get(self.unquote(args.split(" (")[0]))
            if box is None:
                c.send(f"{tag} NO [NONEXISTENT] no such folder\r\n".encode())
            else:
                c.send(f"* STATUS {args.split(' (')[0]} (MESSAGES {len(box.messages)} UNSEEN 0 "
                       f"UIDNEXT {max(box.messages, default=0) + 1} UIDVALIDITY "
                       f"{box.uidvalidity})\r\n".encode() + ok)
        elif name in ("SELECT", "EXAMINE"):
            folder = self.unquote(args.split(" (")[0])
            box = self.folders.get(folder)
            if box is None:
                c.send(f"{tag} NO [NONEXISTENT] no such folder\r\n".encode())
                return True
            self.selected = folder
            c.send(self.select_reply(box) + f"{tag} OK [READ-ONLY] {name} done\r\n".encode())
        elif name == "UID SEARCH":
            box = self.box()
            c.send(b"* SEARCH " + " ".join(map(str, sorted(box.messages))).encode() + b"\r\n" + ok)
        elif name == "UID FETCH":
            c.send(self.fetch_reply(args) + ok)
        elif name == "LOGOUT":
            c.send(b"* BYE logging out\r\n" + ok)
            c.close()
            return False
        else:
            c.send(f"{tag} BAD unknown command {name}\r\n".encode())
        return True

    def box(self) -> Folder:
        return self.folders[self.selected or "INBOX"]

    def select_reply(self, box: Folder) -> bytes:
        nxt = max(box.messages, default=0) + 1
        return (f"* {len(box.messages)} EXISTS\r\n* 0 RECENT\r\n"
                f"* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)\r\n"
                f"* OK [UIDVALIDITY {box.uidvalidity}] ok\r\n* OK [UIDNEXT {nxt}] ok\r\n").encode()

    def fetch_reply(self, args: str) -> bytes:
        box = self.box()
        wanted = set(self.uids(args.split(" ", 1)[0], box))
        items = args.upper()
        out = b""
        for seq, (uid, raw) in enumerate(sorted(box.messages.items()), start=1):
            if uid not in wanted:
                continue
            parts = [f"UID {uid}".encode()]
            if "FLAGS" in items:
                parts.append(f"FLAGS ({box.flags.get(uid, '')})".encode())
            if "RFC822.SIZE" in items:
                parts.append(f"RFC822.SIZE {len(raw)}".encode())
            if "INTERNALDATE" in items:
                parts.append(b'INTERNALDATE "01-Jan-2024 10:00:00 +0000"')
            if "HEADER.FIELDS" in items:
                head = b"".join(x + b"\r\n" for x in raw.split(b"\r\n")
                                if x.lower().startswith(b"message-id:")) + b"\r\n"
                parts.append(b"BODY[HEADER.FIELDS (MESSAGE-ID)] {%d}\r\n" % len(head) + head)
            elif "BODY.PEEK[HEADER]" in items or "RFC822.HEADER" in items:
                head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
                parts.append(b"BODY[HEADER] {%d}\r\n" % len(head) + head)
            elif "BODY.PEEK[]" in items or "BODY[]" in items:
                parts.append(b"BODY[] {%d}\r\n" % len(raw) + raw)
            if "ENVELOPE" in items:
                parts.append(b'ENVELOPE ("Mon, 1 Jan 2024 10:00:00 +0000" "hello" '
                             b'(("Ann" NIL "ann" "example.test")) NIL NIL '
                             b'(("Bob" NIL "bob" "example.test")) NIL NIL NIL "<m@x>")')
            if "BODYSTRUCTURE" in items:
                parts.append(b'BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL '
                             b'"7BIT" %d 1 NIL NIL NIL NIL)' % len(raw))
            out += b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"
        return out

    @staticmethod
    def uids(spec: str, box: Folder) -> list[int]:
        top = max(box.messages, default=0)
        found: list[int] = []
        for piece in spec.split(","):
            lo, _, hi = piece.partition(":")
            a = top if lo == "*" else int(lo)
            b = a if not hi else (top if hi == "*" else int(hi))
            found.extend(range(min(a, b), max(a, b) + 1))
        return found

    @staticmethod
    def quote(name: str) -> str:
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'

    @staticmethod
    def unquote(text: str) -> str:
        text = text.strip()
        if text.startswith('"') and text.endswith('"'):
            return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        return text
