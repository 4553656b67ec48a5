"""The root ``mailtool`` group: global options, the application context, lazy commands."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailtool import __version__
from mailtool.cli import state
from mailtool.cli.complete import complete_accounts
from mailtool.record import field, record

if TYPE_CHECKING:
    from mailtool.config import Account, Config
    from mailtool.protocol.transcript import Transcript

_COMMANDS_DIR = Path(__file__).parent / "commands"


@record
class AppContext:
    """What every command gets on ``ctx.obj``."""

    config_path: Path | None = None
    account_name: str | None = None
    verbose: int = 0
    quiet: bool = False
    json: bool = False
    timeout: float = 60.0
    _config: Config | None = field(default=None, repr=False)

    def config(self) -> Config:
        if self._config is None:
            from mailtool.config import load_config

            self._config = load_config(self.config_path)
        return self._config

    def account(self) -> Account | None:
        """The account chosen with ``--account``, or the default one (None if none)."""
        return self.config().account(self.account_name)

    def transcript(self) -> Transcript | None:
        """A transcript that prints to stderr under ``-v`` (None otherwise: no cost)."""
        if self.verbose < 1:
            return None
        from mailtool.cli.render import transcript_printer
        from mailtool.protocol.transcript import Transcript

        return Transcript(hooks=[transcript_printer(self.verbose)], keep=False)

    def collecting_transcript(self) -> Transcript:
        """A transcript that keeps its entries (diagnose), printing too under ``-v``."""
        from mailtool.protocol.transcript import Transcript

        hooks: list[object] = []
        if self.verbose >= 1:
            from mailtool.cli.render import transcript_printer

            hooks.append(transcript_printer(self.verbose))
        return Transcript(hooks=hooks, keep=True)  # type: ignore[arg-type]


class LazyGroup(click.Group):
    """Commands are the modules of ``mailtool/cli/commands``; imported only when needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = []
        for entry in os.listdir(_COMMANDS_DIR):
            if entry.endswith(".py") and not entry.startswith("_"):
                names.append(entry[:-3].replace("_", "-"))
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        module_name = cmd_name.replace("-", "_")
        if not (_COMMANDS_DIR / f"{module_name}.py").exists() or module_name.startswith("_"):
            return None
        module = importlib.import_module(f"mailtool.cli.commands.{module_name}")
        command = module.command
        assert isinstance(command, click.Command)
        return command


EPILOG = """\b
Examples:
  mailtool send --smarthost smtp.example.org --from me@example.org \\
      --to ops@example.org --subject 'backup done' --body-file report.txt
  mailtool pop-fetch --account home --maildir ~/Mail/inbox --delete
  mailtool diagnose example.org --rcpt someone@example.org
  mailtool explain '550 5.1.1 user unknown'

Exit codes are sysexits: 0 ok, 64 usage, 65 bad data, 67 unknown user, 68 unknown host,
69 permanent failure, 70 bug, 75 temporary failure (retry later), 76 protocol error,
77 authentication refused, 78 configuration error.
"""


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 80},
    epilog=EPILOG,
)
@click.version_option(__version__, "--version", prog_name="mailtool")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MAILTOOL_CONFIG",
    help="Config file (default: $XDG_CONFIG_HOME/mailtool/config.toml).",
)
@click.option(
    "--account", "account_name", metavar="NAME", help="Account from the config.",
    shell_complete=complete_accounts,
)
@click.option("-v", "--verbose", count=True, help="Show the transcript (-vv: more).")
@click.option("-q", "--quiet", is_flag=True, help="Print errors only.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@click.option(
    "--timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
    help="Seconds to wait for each server reply.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: Path | None,
    account_name: str | None,
    verbose: int,
    quiet: bool,
    as_json: bool,
    timeout: float,
) -> None:
    """Send, fetch, mirror and debug mail from a shell, cron or a pipeline."""
    state.verbosity = verbose
    state.quiet = quiet
    ctx.obj = AppContext(
        config_path=config_path,
        account_name=account_name,
        verbose=verbose,
        quiet=quiet,
        json=as_json,
        timeout=timeout,
    )
    # (`account` is exempt: `account add` creates the file and the account.)
    if (config_path is not None or account_name is not None) and (
        ctx.invoked_subcommand != "account"
    ):
        # Asked for explicitly: a broken file or an unknown account fails now (exit 78),
        # before any command does half its work.
        ctx.obj.account()
    if verbose >= 2:
        import logging

        logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)
