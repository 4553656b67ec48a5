"""``mailtool explain``: what a reply code means and what to do about it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from mailtool.cli.app import AppContext
from mailtool.cli.options import output_options
from mailtool.errors import UsageError

if TYPE_CHECKING:
    from mailtool.protocol.explain import Explanation

_SEVERITY_TEXT = {
    "success": "success",
    "intermediate": "intermediate: the server waits for more",
    "transient": "temporary failure: retry later",
    "permanent": "permanent failure: do not retry unchanged",
    "unknown": "class not given (4 = temporary, 5 = permanent)",
}
_SEVERITY_STYLE = {
    "success": "green",
    "intermediate": "cyan",
    "transient": "yellow",
    "permanent": "red",
    "unknown": "magenta",
}


@click.command(
    context_settings={"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}
)
@click.argument("reply", nargs=-1, type=click.UNPROCESSED)
@output_options
def command(app: AppContext, reply: tuple[str, ...]) -> None:
    """Explain a reply code: meaning, retry or not, what to do, exit code.

    REPLY is a basic code, an enhanced code, both, or a whole server reply as pasted
    (several lines too; read from stdin when REPLY is missing).

    \b
    Examples:
      mailtool explain 550 5.1.1
      mailtool explain 5.7.26
      mailtool explain '451-4.7.1 Greylisted, try again later'
      mailtool explain -ERR [IN-USE] mailbox locked
      mailtool explain 'a1 NO [AUTHENTICATIONFAILED] Authentication failed.'
      postqueue -p | grep said: | mailtool explain --json
    """
    from mailtool.protocol.explain import MAX_PASTE, explain_code

    if reply:
        text = " ".join(reply)
    elif not sys.stdin.isatty():
        text = sys.stdin.read(MAX_PASTE)
    else:
        raise UsageError("give a reply code, e.g. 'mailtool explain 550 5.1.1'")
    explanation = explain_code(text)
    if app.json:
        from mailtool.cli.render import print_json

        print_json(explanation.to_dict())
        return
    if app.quiet:
        return
    from mailtool.cli.render import use_color

    if use_color(sys.stdout):
        _render_rich(explanation)
    else:
        sys.stdout.write(render_plain(explanation))


def _headline(e: Explanation) -> str:
    codes = [str(e.code)] if e.code is not None else []
    if e.enhanced:
        codes.append(e.enhanced)
    if e.resp_code:
        codes.append(f"[{e.resp_code}]")
    return " ".join(codes) or e.protocol.upper()


def _exit_line(e: Explanation) -> str:
    line = f"{int(e.exit_code)} ({e.exit_code.name})"
    distinct = {code for _basic, code in e.exit_codes_by_basic}
    if len(distinct) > 1:
        line += "; by basic code: " + ", ".join(
            f"{basic} -> {int(code)}" for basic, code in e.exit_codes_by_basic
        )
    return line


def render_plain(e: Explanation, width: int = 80) -> str:
    """The human view without colour, wrapped to ``width`` columns."""
    import textwrap

    def wrap(label: str, text: str, indent: int) -> list[str]:
        return textwrap.wrap(
            text, width=width, initial_indent=label, subsequent_indent=" " * indent,
            break_on_hyphens=False,
        ) or [label.rstrip()]

    out = wrap("", f"{_headline(e)}: {e.title} ({_SEVERITY_TEXT[e.severity]})", 2)
    for part in e.parts:
        mark = "" if part.known else " [not registered]"
        out += wrap(f"  {part.code:<9} ", f"{part.title}{mark} ({part.standard})", 12)
        out += wrap(" " * 12, part.meaning, 12)
    out += wrap("What to do:  ", e.action, 13)
    out += wrap("Usual step:  ", e.step, 13)
    out += wrap("Exit code:   ", _exit_line(e), 13)
    for index, line in enumerate(e.text.splitlines() if e.text else []):
        out += wrap("Server said: " if index == 0 else " " * 13, line, 13)
    return "\n".join(out) + "\n"


def _render_rich(e: Explanation) -> None:
    from rich.table import Table
    from rich.text import Text

    from mailtool.cli.render import console

    con: Any = console()
    style = _SEVERITY_STYLE[e.severity]
    head = Text()
    head.append(_headline(e), style=f"bold {style}")
    head.append(f"  {e.title}", style="bold")
    head.append(f"  ({_SEVERITY_TEXT[e.severity]})", style=style)
    con.print(head)
    parts = Table.grid(padding=(0, 2))
    parts.add_column(style="bold", no_wrap=True)
    parts.add_column()
    for part in e.parts:
        body = Text()
        body.append(part.title, style="bold" if part.known else "italic")
        body.append(f"  {part.standard}", style="dim")
        body.append("\n" + part.meaning)
        parts.add_row(part.code, body)
    con.print(parts)
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    facts.add_row("What to do", Text(e.action))
    facts.add_row("Usual step", Text(e.step))
    facts.add_row("Exit code", Text(_exit_line(e)))
    if e.text:
        facts.add_row("Server said", Text(e.text))
    con.print(facts)
