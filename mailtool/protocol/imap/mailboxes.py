"""Mailbox commands of the IMAP client: LIST (SPECIAL-USE, LIST-STATUS), STATUS
(pipelined), SELECT/EXAMINE (CONDSTORE, QRESYNC), UNSELECT."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mailtool.protocol.imap.core import IMAPCore, SelectInfo, _Handler, error_for
from mailtool.protocol.imap.session import (
    Command,
    Raw,
)
from mailtool.protocol.imap.types import (
    ListEntry,
    MailboxStatus,
    Response,
    StatusResponse,
    Untagged,
)
from mailtool.record import record, replace

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from mailtool.protocol.imap.types import UIDSet


@record(frozen=True)
class Mailbox:
    """A LIST entry with its decoded name and, when asked, its STATUS items."""

    entry: ListEntry
    name: str
    status: dict[str, int] | None = None

    @property
    def delimiter(self) -> str | None:
        return self.entry.delimiter

    @property
    def special_use(self) -> str | None:
        return self.entry.special_use


class MailboxCommands(IMAPCore):
    """LIST, STATUS, SELECT/EXAMINE, UNSELECT (a mixin of ``IMAPClient``)."""

    def list_mailboxes(
        self,
        reference: str = "",
        pattern: str = "*",
        *,
        special_use: bool = False,
        status: Sequence[str] | None = None,
    ) -> list[Mailbox]:
        """LIST, with RETURN (SPECIAL-USE) and LIST-STATUS (RFC 5819) when offered.

        With ``status`` and no LIST-STATUS, the STATUS commands are pipelined.
        """
        returns: list[Any] = []
        if special_use and self.has("SPECIAL-USE"):
            returns.append(Raw("SPECIAL-USE"))
        use_list_status = bool(status) and self.has("LIST-STATUS")
        if use_list_status and status:
            returns += [Raw("STATUS"), [Raw(s.upper()) for s in status]]
        args: list[Any] = [self.mailbox_arg(reference) if reference else "", self.mailbox_arg(pattern)]
        if returns:
            args += [Raw("RETURN"), returns]
        entries: list[ListEntry] = []
        statuses: dict[bytes, dict[str, int]] = {}

        def collect(response: Response) -> None:
            if isinstance(response, Untagged):
                if response.kind == "LIST":
                    entries.append(response.value)
                elif response.kind == "STATUS":
                    statuses[response.value.raw_name] = response.value.items

        self.run(self.session.command("LIST", *args, collect=False), handler=_Handler(collect))
        boxes = [Mailbox(entry=e, name=self._name(e.raw_name)) for e in entries]
        if status and not use_list_status:
            wanted = [b for b in boxes if b.entry.selectable]
            many = self.status_many([b.name for b in wanted], status)
            return [replace(b, status=many.get(b.name)) if b.entry.selectable else b for b in boxes]
        if status:
            return [
                replace(b, status=statuses.get(b.entry.raw_name)) if b.entry.selectable else b
                for b in boxes
            ]
        return boxes

    def status(self, mailbox: str, items: Sequence[str]) -> dict[str, int]:
        """STATUS of one mailbox."""
        return self.status_many([mailbox], items, strict=True).get(mailbox, {})

    def status_many(
        self, mailboxes: Sequence[str], items: Sequence[str], *, strict: bool = False
    ) -> dict[str, dict[str, int]]:
        """STATUS for many mailboxes, all commands in flight at once (pipelined).

        A mailbox the server refuses is left out (or raises when ``strict``).
        """
        results: dict[str, dict[str, int]] = {}
        commands: list[tuple[str, Command]] = []
        item_args = [Raw(i.upper()) for i in items]

        def collect(response: Response) -> None:
            if isinstance(response, Untagged) and response.kind == "STATUS":
                status: MailboxStatus = response.value
                results[self._name(status.raw_name)] = status.items

        for name in mailboxes:
            parts = self.session.command("STATUS", self.mailbox_arg(name), item_args, collect=False)
            commands.append((name, self.submit(parts, _Handler(collect))))
        for name, command in commands:
            result = self.wait(command)
            if result.status != "OK" and strict:
                raise error_for(result, f"STATUS {name}")
        # INBOX may come back in another case
        for name in mailboxes:
            if name not in results:
                for key in list(results):
                    if key.upper() == name.upper() == "INBOX":
                        results[name] = results.pop(key)
        return results

    def select(
        self,
        mailbox: str,
        *,
        readonly: bool = False,
        condstore: bool = False,
        qresync: tuple[int, int, str | None] | None = None,
    ) -> SelectInfo:
        """SELECT (or EXAMINE): the mailbox's counters and, with QRESYNC, its changes.

        Args:
            condstore: ask for MODSEQ tracking (``(CONDSTORE)``) when offered.
            qresync: (known UIDVALIDITY, known HIGHESTMODSEQ, known UIDs or None); the
                server then reports ``vanished`` UIDs and changed ``fetches`` (RFC 7162).
        """
        return self.select_begin(mailbox, readonly=readonly, condstore=condstore,
                                 qresync=qresync)()

    def select_begin(
        self,
        mailbox: str,
        *,
        readonly: bool = False,
        condstore: bool = False,
        qresync: tuple[int, int, str | None] | None = None,
        on_vanished: Callable[[UIDSet], None] | None = None,
    ) -> Callable[[], SelectInfo]:
        """Send SELECT/EXAMINE now; the returned function waits for the answer and gives
        what ``select`` gives (local work can be done while the server computes it).

        ``on_vanished`` is called with each ``VANISHED (EARLIER)`` set as it arrives (before
        the changed messages' FETCH lines that follow it), so a caller can start removing
        local copies while the rest of the answer is read; the sets are also in the result.
        """
        info = SelectInfo(name=mailbox, readonly=readonly)
        params: list[Any] = []
        if qresync is not None and "QRESYNC" in self.enabled:
            uidvalidity, modseq, known = qresync
            inner: list[Any] = [uidvalidity, modseq]
            if known:
                inner.append(Raw(known))
            params = [Raw("QRESYNC"), inner]
        elif condstore and self.has("CONDSTORE"):
            params = [Raw("CONDSTORE")]
        name = "EXAMINE" if readonly else "SELECT"
        args: list[Any] = [self.mailbox_arg(mailbox)]
        if params:
            args.append(params)

        def collect(response: Response) -> None:
            if isinstance(response, Untagged):
                kind = response.kind
                if kind == "FETCH":  # by the hundred after QRESYNC: first
                    info.fetches.append(response.value)
                elif kind == "EXISTS" and response.number is not None:
                    info.exists = response.number
                elif kind == "RECENT" and response.number is not None:
                    info.recent = response.number
                elif kind == "FLAGS":
                    info.flags = response.value
                elif kind == "VANISHED":
                    info.vanished.append(response.value.uids)
                    if on_vanished is not None:
                        on_vanished(response.value.uids)
            elif isinstance(response, StatusResponse) and response.code is not None:
                code = response.code
                if code.name == "UIDVALIDITY" and code.args:
                    info.uidvalidity = code.args[0]
                elif code.name == "UIDNEXT" and code.args:
                    info.uidnext = code.args[0]
                elif code.name == "UNSEEN" and code.args:
                    info.unseen = code.args[0]
                elif code.name == "HIGHESTMODSEQ" and code.args:
                    info.highestmodseq = code.args[0]
                elif code.name == "NOMODSEQ":
                    info.nomodseq = True
                elif code.name == "PERMANENTFLAGS":
                    info.permanentflags = tuple(str(a) for a in code.args)

        self.selected = None
        command = self.submit(self.session.command(name, *args, collect=False),
                              _Handler(collect))

        def finish() -> SelectInfo:
            result = self.wait(command)
            if result.status != "OK":
                raise error_for(result, f"{name} {mailbox}")
            if result.code is not None and result.code.name == "READ-ONLY":
                info.readonly = True
            self.selected = info
            return info

        return finish

    def examine(self, mailbox: str, **kwargs: Any) -> SelectInfo:
        return self.select(mailbox, readonly=True, **kwargs)

    def unselect(self) -> None:
        """UNSELECT (RFC 3691) when offered, else CLOSE on a read-only mailbox."""
        if self.selected is None:
            return
        if self.has("UNSELECT") or self.has("IMAP4REV2"):
            self.simple("UNSELECT")
        else:
            self.simple("CLOSE")
        self.selected = None

