"""``mailtool-sendmail``: a sendmail-compatible entry point for cron and other programs.

Usage: ``mailtool-sendmail [-t] [-i] [-oi] [-f ADDR] [-F NAME] [-N NOTIFY] [-R RET]
[-V ENVID] [-v] [RCPT ...] < message``

The message is read on standard input and sent as given (line ends made CRLF, Bcc
removed). The relay comes from the default account's smtp section (``$MAILTOOL_ACCOUNT``
picks another), or ``$MAILTOOL_SMARTHOST`` (``HOST[:PORT]``, with ``$MAILTOOL_TLS`` =
implicit|starttls|none and ``$MAILTOOL_USER``); without either, mail goes straight to each
domain's MX. Exit status is sysexits, like sendmail's.

Mail that fails temporarily (4xx, timeout, connection lost, every relay down) is kept in
the outbox and the exit status is 0, with a note on stderr ("queued for 2 recipients:
451 4.7.1 ..."): run ``mailtool queue run`` from cron to retry it. Permanent failures are
never queued; ``--bounce-to=ADDR`` (or ``bounce_to`` in the account) also mails a plain-text
report of them to ADDR. ``--no-queue`` sends without the outbox (exit 75 on a temporary
failure). ``-F NAME`` on a message without ``From:`` adds ``From: NAME <sender>``; the
account's ``aliases`` and ``rewrite_from`` fix local recipients and senders (root, cron).

Flags are parsed here with the standard library only (no Click, no rich): this runs
thousands of times a day and must start as fast as msmtp. Sendmail flags that make no sense
here (``-oi``, ``-odi``, ``-oem``, ``-B8BITMIME``, ``-bm``, ``-L``, ``-X``...) are accepted and
ignored; modes that are not "send a message" (``-bp``, ``-bs``, ``-bd``, ``-q``) are refused.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

PROG = "mailtool-sendmail"

#: Flags that take a value: attached (``-FCronDaemon``) or as the next word (``-F Cron``).
_WITH_VALUE = set("BCFfhLNoOpqRrVXb")
#: Flags without a value.
_BARE = set("itvnUGmesxA")


class _Usage(Exception):
    pass


def parse_args(argv: Sequence[str]) -> tuple[dict[str, list[str]], list[str]]:
    """sendmail getopt-style flags -> ({flag: [values]}, recipients).

    ``-oi`` -> {"o": ["i"]}, ``-FCronDaemon`` -> {"F": ["CronDaemon"]}, ``-ti`` -> t, i.
    Options stop at ``--`` or the first word that is not an option.
    """
    flags: dict[str, list[str]] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-") or word == "-":
            break
        if word.startswith("--"):
            name, _, value = word[2:].partition("=")
            flags.setdefault("--" + name, []).append(value)
            i += 1
            continue
        j = 1
        while j < len(word):
            ch = word[j]
            if ch in _WITH_VALUE:
                value = word[j + 1 :]
                if not value:
                    i += 1
                    if i >= len(args):
                        raise _Usage(f"option -{ch} needs a value")
                    value = args[i]
                flags.setdefault(ch, []).append(value)
                break
            if ch in _BARE:
                flags.setdefault(ch, []).append("")
                j += 1
                continue
            raise _Usage(f"unknown option -{ch}")
        i += 1
    return flags, args[i:]


def _last(flags: dict[str, list[str]], name: str) -> str | None:
    values = flags.get(name)
    return values[-1] if values else None


def run(argv: Sequence[str], stdin: object = None) -> int:
    from mailtool.errors import MailtoolError

    try:
        return _run(argv)
    except _Usage as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        sys.stderr.write(f"usage: {PROG} [-t] [-i] [-f ADDR] [-F NAME] [RCPT ...] < message\n")
        return 64
    except MailtoolError as exc:
        sys.stderr.write(f"{PROG}: {exc.one_line()}\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except Exception as exc:
        sys.stderr.write(f"{PROG}: internal error: {exc.__class__.__name__}: {exc}\n")
        return 70


def _run(argv: Sequence[str]) -> int:
    flags, recipients = parse_args(argv)
    if "--help" in flags or ("h" in flags and not recipients):
        sys.stdout.write(__doc__ or "")
        return 0
    mode = _last(flags, "b")
    if mode not in (None, "m"):
        raise _Usage(f"-b{mode} is not supported: {PROG} only sends")
    if "q" in flags:
        raise _Usage("-q is not supported: mailtool has its own queue (mailtool queue run)")

    from mailtool.config import load_config  # sendmail's -C (its own config) is ignored
    from mailtool.sendcore import SendRequest, run_send

    config = load_config()
    account = config.account(os.environ.get("MAILTOOL_ACCOUNT"))
    conn = None
    smarthost = os.environ.get("MAILTOOL_SMARTHOST")
    if smarthost or os.environ.get("MAILTOOL_TLS") or os.environ.get("MAILTOOL_USER"):
        from mailtool.endpoint import ConnectionOptions

        conn = ConnectionOptions(
            host=smarthost or None,
            tls=os.environ.get("MAILTOOL_TLS") or None,
            user=os.environ.get("MAILTOOL_USER") or None,
            ca_file=os.environ.get("MAILTOOL_CA_FILE") or None,
        )
    verbose = len(flags.get("v", []))
    transcript = None
    if verbose:
        transcript = _transcript(verbose)
    notify = _last(flags, "N")
    timeout = float(os.environ.get("MAILTOOL_TIMEOUT") or 60.0)
    bounce_to = _last(flags, "--bounce-to") or (account.get("bounce_to") if account else None)
    for name in flags:
        if name.startswith("--") and name not in ("--help", "--bounce-to", "--no-queue"):
            raise _Usage(f"unknown option {name}")
    request = SendRequest(
        recipients=list(recipients),
        from_headers="t" in flags,
        envelope_from=_last(flags, "f") or _last(flags, "r"),
        full_name=_last(flags, "F"),
        notify=[n.strip().upper() for n in notify.split(",")] if notify else None,
        ret=_last(flags, "R"),
        envid=_last(flags, "V"),
        conn=conn,
        verbose=verbose,
        timeout=timeout,
        account=account,
        transcript=transcript,
        prog=PROG,
        queue_on_tempfail="--no-queue" not in flags,
        bounce_to=bounce_to or None,
    )
    return run_send(request, sys.stdin.buffer, sys.stdout, sys.stderr)


def _transcript(verbose: int) -> object:
    from mailtool.protocol.replies import decode_server_text
    from mailtool.protocol.transcript import Transcript, TranscriptEntry

    marks = {"C": " -> ", "S": "<-  ", "*": " == "}

    def hook(entry: TranscriptEntry) -> None:
        for line in entry.data.split(b"\n"):
            if line:
                text = decode_server_text(line.rstrip(b"\r"))
                sys.stderr.write(f"{entry.elapsed_ms:8.1f} ms{marks[entry.direction]}{text}\n")

    return Transcript(hooks=[hook], keep=False)


def main() -> None:
    from mailtool.exitcodes import exit_now

    code = run(sys.argv[1:])
    # No interpreter teardown: everything this process wrote went out with os.write and
    # fsync (the outbox) or is flushed there, and its sockets are closed after QUIT.
    exit_now(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
