"""The root ``mailtool`` group: global options, the application context, lazy commands."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import click

from mailtool import __version__
from mailtool.cli.complete import complete_accounts
from mailtool.cli.context import AppContext, root_setup

__all__ = ["AppContext", "LazyGroup", "cli"]

_COMMANDS_DIR = Path(__file__).parent / "commands"


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
def cli(ctx: click.Context, /, **options: Any) -> None:
    """Send, fetch, mirror and debug mail from a shell, cron or a pipeline."""
    # ``root_setup`` (shared with the fast path) declares the options' types.
    ctx.obj = root_setup(invoked=ctx.invoked_subcommand, **options)
