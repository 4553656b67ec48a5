"""Deliver a message by running a mail delivery agent (procmail, maildrop, dovecot-lda...).

The command is split with ``shlex.split`` and run from that argv list, never through a
shell (fetchmail and mpop had to sanitise ``%F``-style substitutions for exactly this
reason). The message goes to its standard input with LF line ends. Only exit status 0
counts as delivered; 75 (EX_TEMPFAIL) means "try later" and defers the message; anything
else is a permanent failure of the MDA.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile

from mailtool.errors import ConfigError, TempFailError, UnavailableError
from mailtool.exitcodes import ExitCode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

#: How long an MDA may take for one message before we give up on it.
MDA_TIMEOUT = 600.0

#: How much of the MDA's stderr we quote in an error.
MAX_STDERR = 500


def split_command(command: str) -> list[str]:
    """``shlex.split`` with a clear error (exit 78) for an unusable command line."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"cannot parse MDA command {command!r}: {exc}") from exc
    if not argv:
        raise ConfigError("empty MDA command")
    return argv


def run_mda(
    command: str | list[str],
    chunks: Iterable[bytes],
    *,
    env: dict[str, str] | None = None,
    timeout: float = MDA_TIMEOUT,
) -> None:
    """Run the MDA with the message on stdin.

    Raises:
        TempFailError: the MDA exited 75 (deferred).
        UnavailableError: it could not be started, or exited with another non-zero status.
    """
    argv = split_command(command) if isinstance(command, str) else command
    full_env = dict(os.environ)
    full_env.update(env or {})
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                env=full_env,
            )
        except OSError as exc:
            raise UnavailableError(
                f"cannot run MDA {argv[0]}: {exc.strerror or exc}", step="MDA"
            ) from exc
        assert proc.stdin is not None
        broken = False
        try:
            for chunk in chunks:
                if broken:
                    continue  # drain the source so the caller's protocol stays in step
                try:
                    proc.stdin.write(chunk)
                except BrokenPipeError:
                    broken = True
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        try:
            status = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise TempFailError(f"MDA {argv[0]} took longer than {timeout:g} s", step="MDA") from None
        if status == 0 and not broken:
            return
        errors.seek(0)
        text = errors.read(MAX_STDERR).decode("utf-8", "replace").strip().replace("\n", " / ")
        detail = f": {text}" if text else ""
        if status == ExitCode.TEMPFAIL:
            raise TempFailError(f"MDA {argv[0]} deferred the message (exit 75){detail}", step="MDA")
        if status == 0:
            raise UnavailableError(
                f"MDA {argv[0]} exited 0 without reading the whole message", step="MDA"
            )
        raise UnavailableError(f"MDA {argv[0]} failed with exit status {status}{detail}", step="MDA")
