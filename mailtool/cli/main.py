"""Entry point: run the Click app and turn every outcome into one line and a sysexits code.

Expected failures (``MailtoolError``) print ``mailtool: <step>: <message>: <reply>`` on
stderr; usage errors exit 64; Ctrl-C exits 130; anything else is a bug: exit 70 with a short
message, and the traceback only under ``-v``.
"""

from __future__ import annotations

import sys

from mailtool.cli import state

# Not ``typing.TYPE_CHECKING``, and the error tree imported only in ``run``: the fastest
# path (``--version``, asked by every "is it installed?" check) needs neither.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

    from mailtool.errors import MailtoolError


def _print_error(err: MailtoolError) -> None:
    from mailtool.cli.render import error_line

    error_line(err, verbose=state.verbosity)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit status (used by ``main`` and the tests)."""
    import click

    from mailtool.cli.app import cli
    from mailtool.errors import MailtoolError
    from mailtool.exitcodes import ExitCode

    state.reset()
    try:
        rv = cli.main(args=list(argv) if argv is not None else None, prog_name="mailtool",
                      standalone_mode=False)
    except click.exceptions.UsageError as exc:
        exc.show()
        return ExitCode.USAGE
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.stderr.write("mailtool: interrupted\n")
        return ExitCode.INTERRUPTED
    except click.exceptions.ClickException as exc:
        exc.show()
        return ExitCode.USAGE
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
    sys.exit(code)
