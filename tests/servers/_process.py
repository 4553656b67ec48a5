"""Process plumbing shared by the private servers: start, wait until ready, stop by pid.

Theory of operation: every server runs its master process in the foreground as a
direct child of the Python process that started it (``dovecot -F``, Postfix's
``master``, ``dnsmasq -k``), in a session of its own so that a Ctrl-C in a
terminal reaches only us. Beside each master runs a tiny "reaper" process that
waits on a pipe from us: if we die, even by SIGKILL, the pipe closes and the
reaper kills the server's process group, so a killed test run leaves no servers
behind. (PR_SET_PDEATHSIG is no help: the servers' privilege changes clear it.)
Readiness is a real connection that reads the greeting, polled at a short
interval under one overall deadline. Stopping sends SIGTERM to the master, waits,
then SIGKILLs whatever is left of the process tree recorded just before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

# How often readiness probes retry; short, because servers come up in tens of ms.
POLL_INTERVAL = 0.02
# Overall budget for one server to come up; they need well under a second, but a
# loaded 2-core machine can be slow, and a server that fails usually exits at once.
START_TIMEOUT = 30.0
# How long a master gets to stop its children after SIGTERM before we SIGKILL.
STOP_TIMEOUT = 10.0
# How many times a start is retried when another process took one of our ports.
START_ATTEMPTS = 3
# Log text attached to failure reports is cut to this many trailing characters.
LOG_TAIL_CHARS = 20000

# The reaper: one byte on stdin means "stopped normally, exit"; EOF means the
# harness died, so SIGTERM the server's process group, then SIGKILL what is left.
_REAPER = """
import os, signal, sys, time
pgid = int(sys.argv[1])
signal.signal(signal.SIGINT, signal.SIG_IGN)
if sys.stdin.buffer.read(1):
    sys.exit(0)
for sig in (signal.SIGTERM, signal.SIGKILL):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        break
    for _ in range(100):
        time.sleep(0.05)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            sys.exit(0)
"""


class ServerError(RuntimeError):
    """A private server failed to start, answer or stop."""


class MissingBinaryError(ServerError):
    """A server program is not installed."""


class Deadline:
    """An overall time budget that several waits share."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end


def find_binary(name: str, dirs: Sequence[str] = ()) -> str:
    """Return the path of program ``name`` from ``dirs`` or PATH (plus the sbin dirs)."""
    for directory in dirs:
        candidate = Path(directory) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    for directory in path.split(":"):
        if directory and os.access(Path(directory) / name, os.X_OK):
            return str(Path(directory) / name)
    raise MissingBinaryError(
        f"{name} is not installed; run scripts/install-deps.sh "
        "(it installs dovecot-imapd, dovecot-pop3d, dovecot-lmtpd, postfix and dnsmasq)"
    )


def spawn(argv: Sequence[str], log_file: Path, *, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` with no stdin, output appended to ``log_file``, in its own session."""
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
            close_fds=True,
        )


def spawn_reaper(pgid: int) -> subprocess.Popen[bytes]:
    """Start the reaper for process group ``pgid`` (see the module docstring)."""
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _REAPER, str(pgid)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def dismiss_reaper(reaper: subprocess.Popen[bytes] | None) -> None:
    """Tell a reaper the server was stopped normally, and wait for it."""
    if reaper is None:
        return
    try:
        if reaper.stdin is not None:
            reaper.stdin.write(b"x")
            reaper.stdin.close()
    except OSError:
        pass
    try:
        reaper.wait(timeout=5)
    except subprocess.TimeoutExpired:
        reaper.kill()
        reaper.wait(timeout=5)


def run(argv: Sequence[str], *, timeout: float = 30.0, input: bytes | None = None) -> str:
    """Run a short helper command; raise ServerError with its output when it fails."""
    try:
        done = subprocess.run(
            list(argv), input=input, capture_output=True, timeout=timeout, check=False,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerError(f"{' '.join(argv)}: no exit after {timeout} s") from exc
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    if done.returncode != 0:
        raise ServerError(f"{' '.join(argv)}: exit {done.returncode}: {output.strip()}")
    return output


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return True
    # The state letter follows the parenthesised command name, which may hold spaces.
    state = text[text.rfind(")") + 2 :][:1]
    return state not in ("Z", "X", "")


def descendants(pid: int) -> set[int]:
    """All live processes below ``pid`` in the process tree (children, grandchildren...)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {p for p in found if alive(p)}


def wait_gone(pids: Iterable[int], deadline: Deadline) -> set[int]:
    """Poll until none of ``pids`` is alive or the deadline passes; return the survivors."""
    left = {p for p in pids if alive(p)}
    while left and not deadline.expired():
        time.sleep(POLL_INTERVAL)
        left = {p for p in left if alive(p)}
    return left


def kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def read_greeting(host: str, port: int, *, timeout: float,
                  context: ssl.SSLContext | None = None) -> bytes:
    """Connect, optionally wrap in TLS, and return the first line the server sends."""
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock: socket.socket = raw
        if context is not None:
            sock = context.wrap_socket(raw, server_hostname=host)
        data = b""
        while b"\n" not in data and len(data) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        if context is not None:
            with contextlib.suppress(OSError):
                sock.close()
        return data


def wait_for_greeting(host: str, port: int, expect: bytes, deadline: Deadline,
                      check_alive: Callable[[], None], *,
                      context: ssl.SSLContext | None = None) -> bytes:
    """Poll ``host:port`` until it greets with a line starting ``expect``.

    ``check_alive`` raises when the server process died, so a failed start is
    reported at once instead of at the deadline.
    """
    last_error = "no answer"
    while True:
        check_alive()
        try:
            greeting = read_greeting(host, port, timeout=max(0.2, min(2.0, deadline.remaining())),
                                     context=context)
        except (OSError, ssl.SSLError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            if greeting.startswith(expect):
                return greeting
            last_error = f"unexpected greeting {greeting[:200]!r}"
        if deadline.expired():
            raise ServerError(f"{host}:{port} not ready after {deadline.seconds:.0f} s: "
                              f"{last_error}")
        time.sleep(POLL_INTERVAL)


def tail(path: Path, max_chars: int = LOG_TAIL_CHARS) -> str:
    """The last ``max_chars`` characters of a text file, or '' when it does not exist."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_chars * 4))
            text = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return text[-max_chars:]


class Server:
    """Base class: a private server with a work dir, a master process and a log file.

    Subclasses implement ``_configure`` (choose ports, write config files),
    ``_argv`` (the foreground master command), ``_wait_ready`` and may extend
    ``_after_stop``.
    """

    name = "server"
    # Text in the log that means one of our ports was taken by someone else.
    port_in_use_markers: tuple[str, ...] = ("Address already in use",)
    # SIGTERM every process of the tree at once instead of only the master.
    stop_whole_tree = False

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.host = "127.0.0.1"
        self.log_path = self.workdir / f"{self.name}.log"
        self.start_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._known_pids: set[int] = set()

    # -- lifecycle -----------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Configure, launch and wait until every listener greets; retry on taken ports."""
        if self.running:
            return self
        began = time.monotonic()
        deadline = Deadline(timeout)
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, START_ATTEMPTS + 1):
            log_mark = self._log_size()
            self._configure()
            self._proc = spawn(self._argv(), self.log_path, env=self._env())
            self._reaper = spawn_reaper(self._proc.pid)
            try:
                self._wait_ready(deadline)
            except ServerError as exc:
                self._terminate()
                recent = self._log_since(log_mark)
                if attempt < START_ATTEMPTS and any(m in recent for m in self.port_in_use_markers):
                    continue
                raise ServerError(f"{self.name} did not start: {exc}\n--- {self.log_path} ---\n"
                                  f"{recent[-LOG_TAIL_CHARS:]}") from exc
            except BaseException:
                self._terminate()
                raise
            break
        if self._proc is not None:
            self._known_pids = {self._proc.pid} | descendants(self._proc.pid)
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop the master by pid, wait for its whole process tree, SIGKILL stragglers."""
        if self._proc is None:
            return
        self._terminate()
        self._after_stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def pids(self) -> set[int]:
        """The master's pid, all its live descendants and the reaper's pid."""
        if not self.running or self._proc is None:
            return set()
        reaper = {self._reaper.pid} if self._reaper is not None else set()
        return {self._proc.pid} | descendants(self._proc.pid) | reaper

    def log_text(self, max_chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the server's log file."""
        return tail(self.log_path, max_chars)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- for subclasses ------------------------------------------------------------
    def _configure(self) -> None:
        raise NotImplementedError

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        return None

    def _wait_ready(self, deadline: Deadline) -> None:
        raise NotImplementedError

    def _after_stop(self) -> None:
        """Hook run after the process tree is gone (release ports, helpers...)."""

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise ServerError(f"{self.name} exited with status {self._proc.returncode}")

    # -- internals -----------------------------------------------------------------
    def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        tree = self._known_pids | ({proc.pid} | descendants(proc.pid) if proc.poll() is None
                                   else set())
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if self.stop_whole_tree:
            for pid in tree - {proc.pid}:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
        deadline = Deadline(STOP_TIMEOUT)
        try:
            proc.wait(timeout=deadline.remaining())
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        survivors = wait_gone(tree, deadline)
        if survivors:
            kill_all(survivors)
            wait_gone(survivors, Deadline(5))
        dismiss_reaper(self._reaper)
        self._proc = None
        self._reaper = None
        self._known_pids = set()

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


def _reachable(path: Path) -> bool:
    """Whether every directory from / down to ``path`` is searchable by other users."""
    for part in (path, *path.parents):
        try:
            if not os.stat(part).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def make_servers_dir() -> Path:
    """A fresh directory the server accounts (mail, dovecot, postfix) can traverse."""
    candidates = [Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp")]
    for base in candidates:
        if base.is_dir() and _reachable(base):
            path = Path(tempfile.mkdtemp(prefix="mailtool-servers-", dir=base))
            os.chmod(path, 0o711)
            return path
    raise ServerError(f"no temp directory reachable by other users among {candidates}")


def write_text(path: Path, text: str, mode: int = 0o644, *, backdate: bool = False) -> None:
    """Write a config file atomically (readers never see half a file).

    ``backdate`` sets its mtime two seconds back: Postfix waits until a config
    file is at least a second old before it reads it (an editor may still be
    writing), which would add a second to every start.
    """
    tmp = path.with_name(path.name + "~tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    if backdate:
        past = time.time() - 2
        os.utime(tmp, (past, past))
    os.replace(tmp, path)


__all__ = [
    "Deadline",
    "MissingBinaryError",
    "Server",
    "ServerError",
    "alive",
    "descendants",
    "find_binary",
    "make_servers_dir",
    "read_greeting",
    "run",
    "spawn",
    "tail",
    "wait_for_greeting",
    "wait_gone",
    "write_text",
]
