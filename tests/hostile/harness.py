"""The shared checker of the hostile-server suite.

``run_case`` runs the real CLI as a subprocess against a scripted server and collects
what a hostile server could break: the exit code, stderr, the child's peak memory (from
``os.wait4``), the wall time, and every file under the test's temp dir before and after.
``check`` then asserts the contract every case shares (DESIGN.md): finished in time, the
sysexits code of the failure, one readable ``mailtool: ...`` line naming the step and the
server's reply and no traceback, bounded memory, nothing written outside the destination
or the XDG state/cache dirs, and no state committed when the case says none may be.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.server import Conn, ScriptedServer
from tests.helpers import ROOT, peak_rss_argv, read_peak_rss

#: Peak resident memory a run may reach (KiB). The CLI alone needs about 40 MB; hostile
#: servers in this suite send up to 16 MB, which must never end up in memory.
MAX_RSS_KIB = 110 * 1024
#: The per-reply timeout the CLI gets (``--timeout``): stalls must end in about this long.
CLI_TIMEOUT = 1.5
#: A run must be over within this many seconds (start-up on a loaded 2-core machine + timeouts).
DEADLINE = 15.0

PASSWORD = "hostile-S3cret-pw"


@dataclass
class Outcome:
    code: int
    stdout: bytes
    stderr: str
    maxrss_kib: int
    elapsed: float
    before: dict[str, str]
    after: dict[str, str]

    def changed(self) -> set[str]:
        """Paths (relative to the test's temp dir) created, changed or removed by the run."""
        keys = set(self.before) | set(self.after)
        return {k for k in keys if self.before.get(k) != self.after.get(k)}


def snapshot(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file and directory under ``root``: relative path -> digest (or ``dir``)."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            found[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            path = os.path.join(dirpath, f)
            if skip is not None and path == str(skip):
                continue
            try:
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            except OSError:
                digest = "unreadable"
            found[os.path.relpath(path, root)] = digest
    return found


def run_cli_measured(argv: Sequence[str], root: Path, *, input: bytes | None = None,
                     deadline: float = DEADLINE, env: dict[str, str] | None = None) -> Outcome:
    """Run ``mailtool ARGV`` with cwd ``root/cwd``; measure time, memory and file changes."""
    cwd = root / "cwd"
    cwd.mkdir(exist_ok=True)
    report = root / "peak-rss"
    before = snapshot(root, skip=report)
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), MAILTOOL_PASSWORD=PASSWORD)
    full_env.update(env or {})
    start = time.monotonic()
    proc = subprocess.Popen(
        peak_rss_argv([sys.executable, "-m", "mailtool", *argv], report), cwd=cwd, env=full_env,
        start_new_session=True,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out: dict[str, bytes] = {}

    def pump(name: str, stream: object) -> None:
        out[name] = stream.read()  # type: ignore[attr-defined]

    threads = [threading.Thread(target=pump, args=(n, s), daemon=True)
               for n, s in (("stdout", proc.stdout), ("stderr", proc.stderr))]
    for t in threads:
        t.start()
    if input is not None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(input)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    # A watchdog kills a run that hangs, so the assertion (not pytest-timeout) reports it.
    killer = threading.Timer(deadline + 10, os.killpg, (proc.pid, 9))
    killer.start()
    try:
        _, status, _usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    elapsed = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in threads:
        t.join(timeout=10)
    return Outcome(
        code=proc.returncode, stdout=out.get("stdout", b""),
        stderr=out.get("stderr", b"").decode("utf-8", "replace"),
        maxrss_kib=read_peak_rss(report), elapsed=elapsed, before=before,
        after=snapshot(root, skip=report),
    )


@dataclass
class Expect:
    """What a case must end with."""

    code: int
    says: Sequence[str] = ()  # substrings of the one error line (step, server reply)
    #: changed paths may only be under these prefixes (relative to the test's temp dir)
    may_write: Sequence[str] = ("dest", "home/state", "home/cache")
    #: paths under these prefixes must be byte-identical afterwards (committed state)
    unchanged: Sequence[str] = ()
    error_line: bool = True  # False for commands that succeed
    extra: Callable[[Outcome], None] | None = field(default=None)


def check(outcome: Outcome, expect: Expect, *, deadline: float = DEADLINE) -> None:
    err = outcome.stderr
    context = f"exit {outcome.code}\n--- stderr ---\n{err[-3000:]}"
    assert outcome.elapsed < deadline, f"took {outcome.elapsed:.1f} s\n{context}"
    assert "Traceback" not in err, context
    assert outcome.code == expect.code, context
    if expect.error_line:
        lines = [line for line in err.splitlines() if line.startswith("mailtool:")]
        assert len(lines) == 1, f"want exactly one 'mailtool:' line\n{context}"
        line = lines[0]
        assert "internal error" not in line, context
        assert len(line) < 4000, f"error line of {len(line)} chars"
        assert line.isprintable(), f"unprintable error line {line!r}"
        for word in expect.says:
            assert word.lower() in line.lower(), f"{word!r} not in {line!r}"
    assert outcome.maxrss_kib < MAX_RSS_KIB, (
        f"peak memory {outcome.maxrss_kib // 1024} MiB\n{context}")
    changed = outcome.changed()
    outside = sorted(p for p in changed if p != "cwd" and not any(
        p == w or p.startswith(w + os.sep) or w.startswith(p + os.sep) for w in expect.may_write))
    assert not outside, f"wrote outside the destination: {outside}"
    frozen = sorted(p for p in changed if any(
        p == w or p.startswith(w + os.sep) for w in expect.unchanged))
    assert not frozen, f"committed what it must not: {frozen}"
    if expect.extra is not None:
        expect.extra(outcome)


def files_under(root: Path, prefix: str, outcome: Outcome) -> list[str]:
    """Message files (not dirs) under ``prefix`` after the run."""
    return sorted(p for p, d in outcome.after.items() if p.startswith(prefix + os.sep)
                  and d != "dir")


def serve(handler: Callable[..., None], **kwargs: object) -> ScriptedServer:
    return ScriptedServer(handler, **kwargs)  # type: ignore[arg-type]


# --- server behaviours shared by the SMTP, POP3 and IMAP cases ---------------------------

#: How much a flooding server sends at most: far above every line and literal bound.
BIG = 16 * 1024 * 1024


def flood(c: Conn, first: bytes, total: int = BIG) -> None:
    """Send ``first`` then bytes without a line end until ``total`` or the client leaves."""
    c.send(first)
    block = b"x" * 65536
    try:
        for _ in range(total // len(block)):
            c.send(block)
    except OSError:
        pass
    c.read_until_closed()


def stall(c: Conn, *_: object) -> None:
    """Say nothing more, keep the connection open until the client gives up."""
    c.read_until_closed()


def reset(c: Conn, *_: object) -> None:
    """Close with a TCP RST."""
    c.reset()
