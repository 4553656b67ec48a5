"""Entry point: run the Click app and turn every outcome into one line and a sysexits code.

Expected failures (``MailtoolError``) print ``mailtool: <step>: <message>: <reply>`` on
stderr; usage errors exit 64; Ctrl-C exits 130; anything else is a bug: exit 70 with a short
message, and the traceback only under ``-v``.
"""

from __future__ import annotations

import os
import sys

from mailtool.cli import state

# Not ``typing.TYPE_CHECKING``, and the error tree imported only in ``run``: the fastest
# path (``--version``, asked by every "is it installed?" check) needs neither.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import NoReturn

    from mailtool.errors import MailtoolError


def _print_error(err: MailtoolError) -> None:
    from mailtool.cli.render import error_line

    error_line(err, verbose=state.verbosity)


#: Set when the fast path ran the command (``main`` may then skip the interpreter teardown).
_fast_ran = False


def run(argv: Sequence[str] | None = None, *, fast: bool = True) -> int:
    """Run the CLI and return the exit status (used by ``main`` and the tests).

    The cron commands are first offered to the Click-free fast path (``fastparse``);
    whatever it does not handle, Click parses (``fast=False``, or ``MAILTOOL_FAST=0`` in
    the environment to compare the two: always Click).
    """
    state.reset()
    args = list(argv) if argv is not None else sys.argv[1:]
    if fast and os.environ.get("MAILTOOL_FAST") != "0":
        from mailtool.cli.fastparse import invoke, parse

        found = parse(args)
        if found is not None:
            global _fast_ran
            _fast_ran = True
            return _guarded(lambda: invoke(*found))
    return _guarded(lambda: _run_click(args))


def _run_click(args: list[str]) -> int | None:
    """Click's run, its own exceptions turned into exit codes (usage errors: 64)."""
    import click

    from mailtool.cli.app import cli
    from mailtool.exitcodes import ExitCode

    try:
        rv = cli.main(args=args, prog_name="mailtool", standalone_mode=False)
    except click.exceptions.UsageError as exc:
        exc.show()
        return ExitCode.USAGE
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        raise KeyboardInterrupt from None
    except click.exceptions.ClickException as exc:
        exc.show()
        return ExitCode.USAGE
    return None if rv is None else int(rv)


def _guarded(call: Callable[[], int | None]) -> int:
    """Run ``call``; every outcome becomes an exit status and at most one error line.

    The one place that prints ``mailtool: ...`` for failures, on both paths; it imports no
    Click (the fast path never loads it).
    """
    from mailtool.errors import MailtoolError
    from mailtool.exitcodes import ExitCode

    try:
        rv = call()
    except KeyboardInterrupt:
        sys.stderr.write("mailtool: interrupted\n")
        return ExitCode.INTERRUPTED
    except MailtoolError as exc:
        _print_error(exc)
        return int(exc.exit_code)
    except BrokenPipeError:
        # The reader of our output went away (``| head``): not our failure.
        return ExitCode.OK
    except Exception as exc:
        sys.stderr.write(f"mailtool: internal error: {exc.__class__.__name__}: {exc}\n")
        if state.verbosity > 0:
            import traceback

            traceback.print_exc()
        else:
            sys.stderr.write("mailtool: run again with -v for the traceback\n")
        return ExitCode.SOFTWARE
    if rv is None:
        return ExitCode.OK
    return int(rv)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = sys.argv[1:] if argv is None else list(argv)
    if args == ["--version"]:
        # The commonest probe of all ("is it installed?") does not need Click.
        from mailtool import __version__

        sys.stdout.write(f"mailtool, version {__version__}\n")
        sys.exit(0)
    code = run(args)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    dump = os.environ.get("MAILTOOL_DEBUG_MODULES")
    if dump:
        # For the tests that check what a run imported (the fast path must not load Click).
        with open(dump, "w", encoding="utf-8") as fh:
            fh.write("\n".join(sorted(sys.modules)) + "\n")
    if _fast_ran:
        from mailtool.exitcodes import exit_now

        exit_now(code)
    sys.exit(code)
