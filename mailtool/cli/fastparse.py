"""The Click-free fast path: parse a cron command's line with the standard library.

Importing Click costs about 60 ms here, more than a whole msmtp or fetchmail run, and
``send``, ``pop-fetch``, ``imap-sync`` and ``queue run`` are what cron starts every few
minutes (``queue list`` comes along: same group, no more work). So
``main.run`` first asks ``parse`` here; it reads the table that
``scripts/gen_fast_table.py`` writes from the Click tree (``fast_table.py``: Click stays
the one place where options are declared) and reproduces what Click would put into
``ctx.params``, following Click's own parser: options before the command name belong to
the root group, which stops at its first non-option word (as does a group such as
``queue`` before its sub-command's name); the command's options and arguments may be
interspersed; ``--`` ends the options; ``--opt=value``; short clusters
(``-vv``, ``-ti``, ``-fADDR``); the last of a repeated option wins, ``multiple`` collects,
``count`` counts; an option whose value may be left out takes its constant when the next
word is missing or looks like an option.

Anything else is "not handled" (``None``) and Click runs exactly as before, so help,
completion, every usage error and its message stay Click's: ``--help``/``--version`` or
any unknown option, a completion request, a missing or bad value, an extra argument, a
type the table marks unknown, a command not in the table. Handing over is always safe,
only slower; the tests run a matrix of command lines through both parsers and compare.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

#: Click's completion request variable for ``prog_name="mailtool"``.
COMPLETE_VAR = "_MAILTOOL_COMPLETE"


class _Fallback(Exception):
    """Not for the fast path: let Click parse this command line."""


class _NeedsValue:
    """An option whose value may be left out was given without one."""


_NEEDS_VALUE = _NeedsValue()


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None,
          ) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """``(command, root parameters, command parameters)`` as Click would parse them, or
    None when this command line is not for the fast path."""
    env = os.environ if environ is None else environ
    if COMPLETE_VAR in env:
        return None
    from mailtool.cli.fast_table import COMMANDS, ROOT

    try:
        root, rest = _parse(ROOT, list(argv), env, interspersed=False)
        if not rest:
            return None
        name = rest[0]
        if name in COMMANDS:
            spec = COMMANDS[name]
            params, extra = _parse(spec, rest[1:], env, interspersed=True)
        else:
            # A group's sub-command (``queue run``): the group's own options stop at its
            # first other word, which names the sub-command; then as for a command.
            group_spec = _group_spec(COMMANDS, name)
            if group_spec is None:
                return None
            group, rest = _parse(group_spec, rest[1:], env, interspersed=False)
            if not rest or f"{name} {rest[0]}" not in COMMANDS:
                return None
            name = f"{name} {rest[0]}"
            own = [p for p in COMMANDS[name] if not p.get("group")]
            params, extra = _parse(own, rest[1:], env, interspersed=True)
            params = {**group, **params}
        if extra:
            return None  # "Got unexpected extra argument": Click says so
    except _Fallback:
        return None
    return name, root, params


def _group_spec(commands: Mapping[str, list[dict[str, Any]]], group: str,
                ) -> list[dict[str, Any]] | None:
    """The group's own parameters (None: no fast sub-command of ``group``)."""
    prefix = group + " "
    for key, spec in commands.items():
        if key.startswith(prefix):
            return [p for p in spec if p.get("group")]
    return None


def _parse(spec: list[dict[str, Any]], args: list[str], env: Mapping[str, str], *,
           interspersed: bool) -> tuple[dict[str, Any], list[str]]:
    """One level (the root group or a command): its parameters and the words left over."""
    long_opts: dict[str, tuple[dict[str, Any], bool]] = {}
    short_opts: dict[str, tuple[dict[str, Any], bool]] = {}
    for param in spec:
        for names, primary in ((param.get("opts", ()), True),
                               (param.get("secondary", ()), False)):
            for opt in names:
                short = len(opt) == 2 and opt[1] != "-"
                (short_opts if short else long_opts)[opt] = (param, primary)

    seen: dict[str, Any] = {}
    largs: list[str] = []
    rargs = args

    def value_for(param: dict[str, Any]) -> Any:
        if not rargs:
            if param.get("optional_value"):
                return _NEEDS_VALUE
            raise _Fallback  # "Option requires an argument"
        nxt = rargs[0]
        if param.get("optional_value") and nxt[:1] == "-" and len(nxt) > 1:
            return _NEEDS_VALUE
        return rargs.pop(0)

    def record(param: dict[str, Any], primary: bool, value: Any) -> None:
        name, action = param["name"], param["action"]
        if action == "store":
            seen[name] = value
        elif action == "append":
            seen.setdefault(name, []).append(value)
        elif action == "count":
            seen[name] = seen.get(name, 0) + 1
        else:  # flag
            seen[name] = param["const"] if primary else False

    def takes_value(param: dict[str, Any]) -> bool:
        return bool(param["action"] in ("store", "append"))

    while rargs:
        arg = rargs.pop(0)
        if arg == "--":
            break
        if arg[:1] != "-" or len(arg) == 1:
            if interspersed:
                largs.append(arg)
                continue
            rargs.insert(0, arg)
            break
        # Long options first (``--opt`` or ``--opt=value``), then a short cluster.
        opt, eq, explicit = arg.partition("=")
        found = long_opts.get(opt)
        if found is not None:
            param, primary = found
            if takes_value(param):
                if eq:
                    rargs.insert(0, explicit)
                record(param, primary, value_for(param))
            elif eq:
                raise _Fallback  # "Option does not take a value"
            else:
                record(param, primary, None)
            continue
        if arg[:2] == "--":
            raise _Fallback  # unknown long option (or --help, --version)
        for i in range(1, len(arg)):
            found = short_opts.get("-" + arg[i])
            if found is None:
                raise _Fallback  # unknown short option (or -h)
            param, primary = found
            if takes_value(param):
                if i + 1 < len(arg):
                    rargs.insert(0, arg[i + 1:])
                record(param, primary, value_for(param))
                break
            record(param, primary, None)

    positional = largs + rargs
    values: dict[str, Any] = {}
    arguments = [p for p in spec if p["action"] == "argument"]
    if arguments:
        taken, positional = _unpack(positional, [p["nargs"] for p in arguments])
    else:
        taken = []
    for param, raw in zip(arguments, taken, strict=True):
        if raw is None or raw == ():
            if param["required"]:
                raise _Fallback  # "Missing argument"
            values[param["name"]] = param["absent"]
        elif param["nargs"] == -1:
            values[param["name"]] = tuple(_convert(param, v) for v in raw)
        else:
            values[param["name"]] = _convert(param, raw)
    for param in spec:
        name = param["name"]
        action = param["action"]
        if action == "argument":
            continue
        if name not in seen:
            envvar = param.get("envvar")
            from_env = env.get(envvar) if envvar else None
            values[name] = _convert(param, from_env) if from_env else param["absent"]
        elif action == "append":
            values[name] = tuple(_convert(param, v) for v in seen[name])
        elif action == "store":
            values[name] = _convert(param, seen[name])
        else:  # flag (its constant) or count (an int >= 0)
            values[name] = seen[name]
    return values, positional


def _unpack(args: list[str], nargs: list[int]) -> tuple[list[Any], list[str]]:
    """Click's ``_unpack_args`` for arguments of nargs 1 and -1 (None: not given)."""
    rest = list(args)
    front: list[Any] = []
    back: list[Any] = []
    star = None
    for n in nargs:
        if n == -1:
            star = len(front)
            front.append(None)
            continue
        if star is None:
            front.append(rest.pop(0) if rest else None)
        else:
            back.append(None)
    if star is not None:
        for i in range(len(back)):  # those after the star take from the end
            back[-1 - i] = rest.pop() if rest else None
        front[star] = tuple(rest)
        rest = []
    return front + back, rest


def _convert(param: dict[str, Any], value: Any) -> Any:
    """A value from the command line (or environment) through the parameter's type."""
    if value is _NEEDS_VALUE:
        value = param["const"]
    kind = param["type"][0]
    spec = param["type"]
    if kind == "str":
        return str(value)
    if kind in ("int", "float"):
        try:
            number = int(value) if kind == "int" else float(value)
        except ValueError:
            raise _Fallback from None
        low, high, low_open, high_open = spec[1:5]
        if low is not None and (number <= low if low_open else number < low):
            raise _Fallback
        if high is not None and (number >= high if high_open else number > high):
            raise _Fallback
        return number
    if kind == "choice":
        choices, case_sensitive = spec[1], spec[2]
        wanted = str(value) if case_sensitive else str(value).casefold()
        for choice in choices:
            if (choice if case_sensitive else choice.casefold()) == wanted:
                return choice
        raise _Fallback
    if kind == "path":
        return _path(spec, value)
    if kind == "custom":
        from mailtool.cli.convert import CONVERTERS

        try:
            return CONVERTERS[spec[1]](str(value))
        except ValueError:
            raise _Fallback from None
    if kind == "bool" and isinstance(value, bool):
        return value
    raise _Fallback  # a type the table does not describe


def _path(spec: tuple[Any, ...], value: str) -> Any:
    """``click.Path``'s checks; any failure is Click's to report."""
    import stat

    (exists, file_okay, dir_okay, readable, writable, executable, allow_dash,
     resolve_path, path_type) = spec[1:10]
    rv = value
    if not (file_okay and allow_dash and rv == "-"):
        if resolve_path:
            rv = os.path.realpath(rv)
        try:
            st = os.stat(rv)
        except OSError:
            if exists:
                raise _Fallback from None
        else:
            if (not file_okay and stat.S_ISREG(st.st_mode)) or (
                not dir_okay and stat.S_ISDIR(st.st_mode)
            ):
                raise _Fallback
            if readable and not os.access(rv, os.R_OK):
                raise _Fallback
            if writable and not os.access(rv, os.W_OK):
                raise _Fallback
            if executable and not os.access(value, os.X_OK):
                raise _Fallback
    if path_type == "Path":
        from pathlib import Path

        return Path(rv)
    return rv


def invoke(name: str, root: dict[str, Any], params: dict[str, Any]) -> int:
    """Run a parsed command as the Click path would: the root group's set-up, the shared
    output and connection words, then the command's body from ``cli/run/``."""
    from mailtool.cli.context import connection, merge_output, root_setup, split_params

    words = name.split()
    app = root_setup(invoked=words[0], **root)
    output, conn_words, rest = split_params(dict(params))
    if conn_words:
        rest["conn"] = connection(**conn_words)
    merge_output(app, **output)
    # ``send`` -> run.send.run; ``queue run`` -> run.queue.queue_run
    module_name = "mailtool.cli.run." + words[0].replace("-", "_")
    __import__(module_name)  # (importlib itself would be one more import to pay for)
    module = sys.modules[module_name]
    body = getattr(module, "run" if len(words) == 1 else "_".join(words).replace("-", "_"))
    try:
        rv = body(app, **rest)
        return 0 if rv is None else int(rv)
    except KeyboardInterrupt:
        sys.stderr.write("\n")  # as Click does: the line after the terminal's "^C"
        raise
