"""A small scripted POP3 server for fault tests: a normal maildrop whose every command
can be overridden by a hook (drop the connection mid-RETR, -ERR on DELE, bad listings)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mailtool.protocol.wire import dot_stuff
from tests.faults.server import Conn

#: hook(conn, args) -> True when it answered (or ended the session) itself.
Hook = Callable[[Conn, list[str]], bool]


@dataclass
class FakeMaildrop:
    messages: dict[int, bytes]
    uidls: dict[int, str]
    caps: list[str] = field(default_factory=lambda: ["USER", "UIDL", "TOP"])
    hooks: dict[str, Hook] = field(default_factory=dict)
    greeting: bytes = b"+OK fake POP3 ready\r\n"
    deleted: set[int] = field(default_factory=set)
    committed: set[int] = field(default_factory=set)
    commands: list[str] = field(default_factory=list)

    def handler(self, c: Conn) -> None:
        c.send(self.greeting)
        marked: set[int] = set()
        while True:
            raw = c.readline().decode("ascii", "replace").strip()
            self.commands.append(raw)
            name, *args = raw.split(" ") if raw else [""]
            name = name.upper()
            hook = self.hooks.get(name)
            if hook is not None and hook(c, args):
                if c.closed:
                    return
                continue
            if name == "CAPA":
                c.send(b"+OK\r\n" + "".join(f"{x}\r\n" for x in self.caps).encode() + b".\r\n")
            elif name in ("USER", "PASS", "NOOP", "RSET"):
                c.send(b"+OK\r\n")
            elif name == "LIST" and args:
                num = int(args[0])
                if num in self.messages:
                    c.send(f"+OK {num} {len(self.messages[num])}\r\n".encode())
                else:
                    c.send(b"-ERR no such message\r\n")
            elif name == "LIST":
                body = "".join(f"{n} {len(m)}\r\n" for n, m in sorted(self.messages.items()))
                c.send(b"+OK\r\n" + body.encode() + b".\r\n")
            elif name == "UIDL":
                body = "".join(f"{n} {u}\r\n" for n, u in sorted(self.uidls.items()))
                c.send(b"+OK\r\n" + body.encode() + b".\r\n")
            elif name in ("RETR", "TOP"):
                msg = self.messages[int(args[0])].replace(b"\n", b"\r\n")
                if name == "TOP":
                    msg = msg.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
                c.send(b"+OK\r\n" + dot_stuff(msg))
            elif name == "DELE":
                marked.add(int(args[0]))
                c.send(b"+OK marked\r\n")
            elif name == "QUIT":
                self.committed |= marked
                for n in marked:
                    self.messages.pop(n, None)
                    self.uidls.pop(n, None)
                c.send(b"+OK bye\r\n")
                c.close()
                return
            else:
                c.send(b"-ERR unknown command\r\n")
