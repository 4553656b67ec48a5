"""Message commands of the IMAP client: UID SEARCH (ESEARCH), UID FETCH (streamed
bodies, pipelined batches, CHANGEDSINCE/VANISHED), UID STORE, EXPUNGE, MOVE, APPEND, NOOP,
IDLE."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from mailtool.errors import (
    TransportTimeoutError,
    UnavailableError,
)
from mailtool.protocol.imap.core import (
    IDLE_MAX,
    IMAPCore,
    SinkFactory,
    _Handler,
    _quoted,
    _set_text,
    error_for,
)
from mailtool.protocol.imap.session import (
    Command,
    CommandParts,
    LiteralData,
    Raw,
)
from mailtool.protocol.imap.types import (
    ESearch,
    FetchData,
    Response,
    UIDSet,
    Untagged,
    Vanished,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any


class MessageCommands(IMAPCore):
    """SEARCH, FETCH, STORE, EXPUNGE, MOVE, APPEND, NOOP, IDLE (a mixin of ``IMAPClient``)."""

    def _criteria(self, criteria: str | Sequence[Any]) -> list[Any]:
        if isinstance(criteria, str):
            return [Raw(criteria)]
        args = list(criteria)
        needs_charset = any(
            isinstance(a, str) and not isinstance(a, Raw) and not a.isascii() for a in args
        )
        if needs_charset and not self.utf8:
            args = [Raw("CHARSET"), Raw("UTF-8"), *args]
        return args

    def uid_search(self, criteria: str | Sequence[Any] = "ALL") -> list[int]:
        """UID SEARCH (ESEARCH's RETURN (ALL) when offered): matching UIDs, ascending.

        ``criteria`` is raw IMAP search text, or a list of arguments where plain ``str``
        values are quoted (or sent as literals) and ``Raw`` values go as written.
        """
        return list(self.uid_search_set(criteria))

    def uid_search_set(self, criteria: str | Sequence[Any] = "ALL") -> UIDSet:
        """Like ``uid_search`` but as a compact ``UIDSet`` (ESEARCH sends ranges, so a
        folder of 100,000 messages costs a few bytes instead of a 600 kB line)."""
        if self.has("ESEARCH"):
            result = self.uid_esearch(criteria, ("ALL",))
            return result.all if result.all is not None else UIDSet()
        found: list[int] = []

        def collect(response: Response) -> None:
            if isinstance(response, Untagged) and response.kind == "SEARCH":
                found.extend(response.value)

        self.run(
            self.session.command("UID SEARCH", *self._criteria(criteria), collect=False),
            handler=_Handler(collect),
        )
        return UIDSet.of(found)

    def uid_esearch(
        self, criteria: str | Sequence[Any], returns: Sequence[str] = ("ALL",)
    ) -> ESearch:
        """UID SEARCH RETURN (...) (RFC 4731): ALL as a set, MIN/MAX/COUNT."""
        if not self.has("ESEARCH"):
            raise UnavailableError("server does not support ESEARCH", step="UID SEARCH")
        found: list[ESearch] = []

        def collect(response: Response) -> None:
            if isinstance(response, Untagged) and response.kind == "ESEARCH":
                found.append(response.value)

        parts = self.session.command(
            "UID SEARCH",
            Raw("RETURN"),
            [Raw(r.upper()) for r in returns],
            *self._criteria(criteria),
            collect=False,
        )
        tag = parts.command.tag
        self.run(parts, handler=_Handler(collect))
        for result in found:
            if result.tag in (None, tag):
                return result
        return ESearch(tag=tag, uid=True)

    def _fetch_parts(
        self,
        uids: Any,
        items: Sequence[str] | str,
        changedsince: int | None,
        vanished: bool,
    ) -> CommandParts:
        uid_text = _set_text(uids)
        item_arg: Any = Raw(items) if isinstance(items, str) else [Raw(i) for i in items]
        args: list[Any] = [Raw(uid_text), item_arg]
        modifiers: list[Any] = []
        if changedsince is not None:
            modifiers += [Raw("CHANGEDSINCE"), changedsince]
            if vanished and "QRESYNC" in self.enabled:
                modifiers.append(Raw("VANISHED"))
        if modifiers:
            args.append(modifiers)
        return self.session.command("UID FETCH", *args, collect=False)

    def _fetch_handler(
        self,
        sink: SinkFactory | None,
        on_fetch: Callable[[FetchData], None] | None,
        on_vanished: Callable[[Vanished], None] | None,
        out: list[FetchData],
        max_memory_body: int | None,
    ) -> _Handler:
        def collect(response: Response) -> None:
            if isinstance(response, Untagged):
                if response.kind == "FETCH":
                    if on_fetch is not None:
                        on_fetch(response.value)
                    else:
                        out.append(response.value)
                elif response.kind == "VANISHED" and on_vanished is not None:
                    on_vanished(response.value)

        return _Handler(collect, sink, max_memory_body or self.max_memory_body)

    def uid_fetch(
        self,
        uids: Any,
        items: Sequence[str] | str,
        *,
        sink: SinkFactory | None = None,
        on_fetch: Callable[[FetchData], None] | None = None,
        on_vanished: Callable[[Vanished], None] | None = None,
        changedsince: int | None = None,
        vanished: bool = False,
        max_memory_body: int | None = None,
    ) -> list[FetchData]:
        """UID FETCH ``uids`` (a set text like ``"1:*"``, a ``UIDSet`` or ints).

        Bodies stream to ``sink`` (see the module doc). FETCH responses go to ``on_fetch``
        as they arrive when given (nothing is collected), else they are returned. Unsolicited
        FETCHes without a UID (flag changes by others) are passed on as well: check ``.uid``.
        """
        out: list[FetchData] = []
        parts = self._fetch_parts(uids, items, changedsince, vanished)
        handler = self._fetch_handler(sink, on_fetch, on_vanished, out, max_memory_body)
        self.run(parts, handler=handler)
        return out

    def uid_fetch_many(
        self,
        uid_sets: Iterable[Any],
        items: Sequence[str] | str,
        *,
        window: int = 4,
        sink: SinkFactory | None = None,
        on_fetch: Callable[[FetchData], None] | None = None,
        on_vanished: Callable[[Vanished], None] | None = None,
        on_batch_done: Callable[[Any], None] | None = None,
    ) -> list[FetchData]:
        """Several UID FETCH commands with up to ``window`` in flight (pipelining).

        ``on_batch_done(uid_set)`` runs after each command's tagged OK, in order: the place
        to flush a batch of fsyncs and record state.
        """
        out: list[FetchData] = []
        pending: list[tuple[Any, Command]] = []
        for uid_set in uid_sets:
            parts = self._fetch_parts(uid_set, items, None, False)
            handler = self._fetch_handler(sink, on_fetch, on_vanished, out, None)
            pending.append((uid_set, self.submit(parts, handler)))
            while len(pending) >= max(1, window):
                self._finish_batch(pending.pop(0), on_batch_done)
        while pending:
            self._finish_batch(pending.pop(0), on_batch_done)
        return out

    def _finish_batch(
        self, item: tuple[Any, Command], on_batch_done: Callable[[Any], None] | None
    ) -> None:
        uid_set, command = item
        result = self.wait(command)
        if result.status != "OK":
            raise error_for(result, "UID FETCH")
        if on_batch_done is not None:
            on_batch_done(uid_set)

    def uid_store(
        self,
        uids: Any,
        action: str,
        flags: Sequence[str],
        *,
        unchangedsince: int | None = None,
    ) -> list[FetchData]:
        """UID STORE ``action`` (``+FLAGS``, ``-FLAGS.SILENT`` ...) with CONDSTORE's
        UNCHANGEDSINCE; returns the FETCH responses (empty with .SILENT)."""
        args: list[Any] = [Raw(_set_text(uids))]
        if unchangedsince is not None:
            args.append([Raw("UNCHANGEDSINCE"), unchangedsince])
        args += [Raw(action.upper()), [Raw(f) for f in flags]]
        out: list[FetchData] = []
        handler = self._fetch_handler(None, None, None, out, None)
        self.run(self.session.command("UID STORE", *args, collect=False), handler=handler)
        return out

    def uid_expunge(self, uids: Any) -> None:
        """UID EXPUNGE (UIDPLUS): only these UIDs, not others' \\Deleted messages."""
        if not (self.has("UIDPLUS") or self.has("IMAP4REV2")):
            raise UnavailableError("server lacks UIDPLUS (UID EXPUNGE)", step="UID EXPUNGE")
        self.simple("UID EXPUNGE", Raw(_set_text(uids)))

    def expunge(self) -> None:
        self.simple("EXPUNGE")

    def uid_move(self, uids: Any, destination: str) -> None:
        """UID MOVE (RFC 6851), else COPY + \\Deleted + UID EXPUNGE."""
        uid_text = Raw(_set_text(uids))
        dest = self.mailbox_arg(destination)
        if self.has("MOVE") or self.has("IMAP4REV2"):
            self.simple("UID MOVE", uid_text, dest)
            return
        self.simple("UID COPY", uid_text, dest)
        self.uid_store(uid_text, "+FLAGS.SILENT", ["\\Deleted"])
        self.uid_expunge(uid_text)

    def append(
        self,
        mailbox: str,
        message: bytes | LiteralData,
        *,
        flags: Sequence[str] = (),
        date: str | None = None,
    ) -> tuple[int, int] | None:
        """APPEND; returns (UIDVALIDITY, UID) from APPENDUID when the server reports it."""
        args: list[Any] = [self.mailbox_arg(mailbox)]
        if flags:
            args.append([Raw(f) for f in flags])
        if date:
            args.append(Raw(_quoted(date)))
        if isinstance(message, bytes):
            message = LiteralData(len(message), [message])
        args.append(message)
        command = self.run(self.session.command("APPEND", *args), step=f"APPEND {mailbox}")
        result = command.result
        if result is not None and result.code is not None and result.code.name == "APPENDUID":
            try:
                return int(result.code.args[0]), int(result.code.args[1])
            except (IndexError, ValueError):
                return None
        return None

    def noop(self) -> list[Response]:
        """NOOP; returns the untagged responses it collected (new mail, flag changes)."""
        return self.simple("NOOP").untagged

    def idle(
        self, seconds: float, on_response: Callable[[Response], bool | None] | None = None
    ) -> list[Response]:
        """IDLE (RFC 2177) for at most ``seconds`` (capped at 29 min) or until
        ``on_response`` returns True; returns the untagged responses seen."""
        if not self.has("IDLE") and not self.has("IMAP4REV2"):
            raise UnavailableError("server does not support IDLE", step="IDLE")
        seen: list[Response] = []
        stop = False

        def collect(response: Response) -> None:
            nonlocal stop
            seen.append(response)
            if on_response is not None and on_response(response):
                stop = True

        parts = self.session.command("IDLE", collect=False)
        command = self.submit(parts, _Handler(collect))
        self._continuation = None
        while self._continuation is None:
            if command.result is not None:
                raise error_for(command.result, "IDLE")
            self._pump()
        self._continuation = None
        old = self.transport.timeout
        self.transport.set_timeout(min(seconds, IDLE_MAX))
        try:
            while not stop and command.result is None:
                try:
                    self._pump()
                except TransportTimeoutError:
                    break
        finally:
            self.transport.set_timeout(old)
        if command.result is None:
            self.transport.send(b"DONE\r\n")
        result = self.wait(command)
        if result.status != "OK":
            raise error_for(result, "IDLE")
        return seen

