"""A scripted SMTP server that keeps count: what each recipient received, and when to fail.

Built on ``tests.faults.server.ScriptedServer``. The test flips its behaviour between
runs (``tempfail`` / ``reject`` recipient sets, a greeting code, a hook on every line the
client sends) and reads ``received`` (recipient -> messages accepted with a final 250).
A message counts as received only when the 250 after its data is sent: that is the
moment the client learns it was accepted.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from tests.faults.server import Conn, ScriptedServer

EHLO = b"250-count.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"


class CountingSMTP:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.tempfail: set[str] = set()  # RCPT answered 451
        self.reject: set[str] = set()  # RCPT answered 550
        self.all_tempfail = False  # every RCPT answered 451
        self.greeting = b"220 count.test ESMTP\r\n"
        self.ehlo = EHLO
        self.mail_reply = b"250 2.1.0 ok\r\n"
        self.received: Counter[str] = Counter()
        self.messages: list[tuple[str, list[str], bytes]] = []  # (sender, rcpts, data)
        #: Called with every line the client sends (and b"<data>" once per message body,
        #: before it is read); may raise or block.
        self.on_line: Callable[[bytes], None] | None = None
        #: Called once per connection after EHLO (a barrier for concurrency tests).
        self.after_ehlo: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self.server = ScriptedServer(self.handle, host=host, port=port, max_connections=500)

    @property
    def port(self) -> int:
        return int(self.server.port)

    def __enter__(self) -> CountingSMTP:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def check(self) -> None:
        self.server.check()

    def _line(self, c: Conn) -> bytes:
        line = c.readline()
        if self.on_line is not None:
            self.on_line(line)
        return line

    def handle(self, c: Conn) -> None:
        c.send(self.greeting)
        if not self.greeting.startswith(b"220"):
            c.read_until_closed()
            return
        sender = ""
        mail_ok = False
        rcpts: list[str] = []
        while True:
            line = self._line(c)
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                c.send(self.ehlo)
                if self.after_ehlo is not None:
                    self.after_ehlo()
            elif verb == b"MAIL":
                sender = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
                rcpts = []
                mail_ok = self.mail_reply.startswith(b"2")
                c.send(self.mail_reply)
            elif verb == b"RCPT":
                addr = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
                if not mail_ok:
                    c.send(b"503 5.5.1 MAIL first\r\n")
                elif self.all_tempfail or addr in self.tempfail:
                    c.send(b"451 4.7.1 greylisted, try again later\r\n")
                elif addr in self.reject:
                    c.send(b"550 5.1.1 no such user\r\n")
                else:
                    rcpts.append(addr)
                    c.send(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                if not rcpts:
                    c.send(b"554 5.5.1 no valid recipients\r\n")
                    continue
                c.send(b"354 go ahead\r\n")
                if self.on_line is not None:
                    self.on_line(b"<data>")
                data = c.read_data()
                with self._lock:
                    for r in rcpts:
                        self.received[r] += 1
                    self.messages.append((sender, list(rcpts), data))
                c.send(b"250 2.0.0 queued\r\n")
            elif verb == b"RSET":
                rcpts = []
                c.send(b"250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                c.send(b"221 2.0.0 bye\r\n")
                return
            else:
                c.send(b"502 5.5.2 what?\r\n")
