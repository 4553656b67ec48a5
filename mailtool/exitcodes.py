"""sysexits(3) exit codes, as sendmail and msmtp use them, so scripts can react to ``$?``."""

import os
import sys
from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit status mailtool uses; the CLI never exits with anything else."""

    OK = 0
    WARNING = 1  # diagnose only: everything works, but something deserves attention
    USAGE = 64  # command line usage error
    DATAERR = 65  # bad input data (a message or header we refuse to send)
    NOINPUT = 66  # an input file does not exist or is unreadable
    NOUSER = 67  # addressee unknown (5.1.x)
    NOHOST = 68  # host name unknown, no MX, null MX
    UNAVAILABLE = 69  # permanent failure (other 5xx), TLS required but failed
    SOFTWARE = 70  # internal bug
    CANTCREAT = 73  # cannot write an output file
    IOERR = 74  # local input/output error
    TEMPFAIL = 75  # temporary failure: 4xx, timeout, connection lost; try again later
    PROTOCOL = 76  # the server broke the protocol
    NOPERM = 77  # authentication or permission refused
    CONFIG = 78  # configuration error
    INTERRUPTED = 130  # Ctrl-C


#: Ranking used when several outcomes are combined into one exit status ("the worst wins").
#: A permanent, specific failure is worse than a temporary one; a bug is worst of all.
SEVERITY: dict[ExitCode, int] = {
    ExitCode.OK: 0,
    ExitCode.WARNING: 1,
    ExitCode.TEMPFAIL: 2,
    ExitCode.PROTOCOL: 3,
    ExitCode.UNAVAILABLE: 4,
    ExitCode.NOHOST: 5,
    ExitCode.NOUSER: 6,
    ExitCode.DATAERR: 7,
    ExitCode.NOINPUT: 7,
    ExitCode.CANTCREAT: 8,
    ExitCode.IOERR: 8,
    ExitCode.NOPERM: 9,
    ExitCode.CONFIG: 10,
    ExitCode.USAGE: 11,
    ExitCode.SOFTWARE: 12,
    ExitCode.INTERRUPTED: 13,
}


def worst(*codes: int) -> ExitCode:
    """Return the most severe of ``codes`` (``OK`` when given none)."""
    best = ExitCode.OK
    for code in codes:
        if code == 0:
            continue  # OK is the least severe: nothing to look up (the usual case)
        candidate = ExitCode(code)
        if SEVERITY[candidate] > SEVERITY[best]:
            best = candidate
    return best


def exit_now(code: int) -> None:
    """Leave the process with ``code`` without the interpreter's teardown (freeing every
    module and object: several ms of a cron job's run, more after a sync of thousands of
    messages). What the teardown would still do is done here: the ``atexit`` functions
    run and the output streams are flushed. The commands that use it write their files
    with ``os.write`` and ``with`` blocks and close their sockets; should a non-daemon
    thread still be running, this returns and the caller exits normally, which waits.
    """
    threading = sys.modules.get("threading")
    if threading is not None and any(t.is_alive() and not t.daemon for t in threading.enumerate()
                                     if t is not threading.main_thread()):
        return
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nobody is left to read it
            pass
    os._exit(code)
