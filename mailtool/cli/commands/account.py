"""``mailtool account``: add, list, show, set-password, remove and test accounts."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mailtool.cli.app import AppContext
from mailtool.cli.complete import complete_accounts
from mailtool.cli.options import output_options
from mailtool.errors import ConfigError, UsageError

#: (STARTTLS/cleartext port, implicit-TLS port) and the TLS mode offered first.
_PORTS = {"smtp": (587, 465), "imap": (143, 993), "pop3": (110, 995)}
_FIRST_TLS = {"smtp": "starttls", "imap": "implicit", "pop3": "implicit"}
F = TypeVar("F", bound=Callable[..., Any])
_WHAT = {"smtp": "sending", "imap": "reading, IMAP", "pop3": "fetching, POP3"}


def _config_path(app: AppContext) -> Path:
    from mailtool.config import default_config_path

    return app.config_path or default_config_path()


def _name_or_default(app: AppContext, name: str | None) -> str:
    """The NAME argument, else ``--account``, else the default account."""
    if name:
        return name
    account = app.account()
    if account is None:
        raise UsageError("which account? give NAME (no default account is configured)")
    return account.name


def _known(app: AppContext, name: str) -> None:
    config = app.config()
    if name not in config.accounts:
        where = f" in {config.path}" if config.path else ""
        known = ", ".join(sorted(config.accounts)) or "none"
        raise ConfigError(f"no account named {name!r}{where} (defined: {known})")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """Manage accounts in the config file (comments and order are kept).

    \b
    Examples:
      mailtool account add work                # asks on a terminal
      mailtool account add work --from 'Ann <ann@example.org>' \\
          --smtp-host smtp.example.org:587 --imap-host imap.example.org \\
          --user ann --password-command 'pass show mail/work' --default
      mailtool account set-password work       # into the system keyring
      mailtool account test work
      mailtool account list --json
    """


# --- add -----------------------------------------------------------------------------


def _service_options(service: str) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        func = click.option(
            f"--{service}-user", metavar="NAME", help=f"{service.upper()} login (default: --user)."
        )(func)
        func = click.option(
            f"--{service}-tls",
            type=click.Choice(["implicit", "starttls", "none"]),
            help=f"{service.upper()} TLS mode (default: by port).",
        )(func)
        func = click.option(
            f"--{service}-port", type=click.IntRange(1, 65535), help=f"{service.upper()} port."
        )(func)
        func = click.option(
            f"--{service}-host", metavar="HOST[:PORT]", help=f"{service.upper()} server."
        )(func)
        return func

    return decorate


@command.command("add")
@click.argument("name")
@_service_options("pop3")
@_service_options("imap")
@_service_options("smtp")
@click.option("--from", "from_", metavar="ADDRESS", help="From address, e.g. 'Ann <a@b.org>'.")
@click.option("--user", metavar="NAME", help="Login name for every service.")
@click.option(
    "--password-command", metavar="CMD", help="Command printing the password (every service)."
)
@click.option("--auth", "auth_mech", metavar="MECH", help="Force a SASL mechanism.")
@click.option(
    "--ca-file", type=click.Path(dir_okay=False), help="Trust this CA file (every service)."
)
@click.option("--default", "make_default", is_flag=True, help="Make it the default account.")
@click.option("--replace", is_flag=True, help="Overwrite an existing account of that name.")
@click.option("-n", "--no-input", is_flag=True, help="Never prompt, even on a terminal.")
@output_options
def add(app: AppContext, name: str, from_: str | None, user: str | None,
        password_command: str | None, auth_mech: str | None, ca_file: str | None,
        make_default: bool, replace: bool, no_input: bool, **per_service: Any) -> None:
    """Add an account: interactive on a terminal, or all from flags.

    Writes [accounts.NAME] and one table per service to the config file (mode 0600),
    appending, so comments and order in the file stay as they are. Passwords are never
    written there: use 'account set-password' (keyring) or --password-command.

    \b
    Examples:
      mailtool account add home            # asks host, port, TLS, user, password
      mailtool account add work --smtp-host smtp.example.org --smtp-tls starttls \\
          --imap-host imap.example.org --user ann@example.org \\
          --password-command 'pass show mail/work' --default --no-input
    """
    from mailtool.accounts import AccountSpec, check_name
    from mailtool.endpoint import split_host_port

    check_name(name)
    services: dict[str, dict[str, Any]] = {}
    for service in ("smtp", "imap", "pop3"):
        host = per_service.get(f"{service}_host")
        if not host:
            for key in ("port", "tls", "user"):
                if per_service.get(f"{service}_{key}") is not None:
                    raise UsageError(f"--{service}-{key} needs --{service}-host")
            continue
        host, port = split_host_port(host)
        table: dict[str, Any] = {"host": host}
        port = per_service.get(f"{service}_port") or port
        if port:
            table["port"] = port
        tls = per_service.get(f"{service}_tls")
        if tls:
            table["tls"] = tls
        login = per_service.get(f"{service}_user") or user
        if login:
            table["user"] = login
        if auth_mech:
            table["auth"] = auth_mech
        if password_command:
            table["password_command"] = password_command
        if ca_file:
            table["ca_file"] = ca_file
        services[service] = table
    settings: dict[str, Any] = {"from": from_} if from_ else {}
    interactive = not services and not no_input and sys.stdin.isatty()
    store_password: str | None = None
    test_after = False
    if interactive:
        settings, services, store_password, make_default, test_after = _ask(
            app, name, from_, user, password_command, make_default
        )
    elif not services:
        raise UsageError(
            "give at least one of --smtp-host, --imap-host, --pop3-host"
            " (no terminal to ask on)"
        )
    spec = AccountSpec(name=name, settings=settings, services=services)
    path = _config_path(app)
    from mailtool.accounts import add_account, describe

    config = add_account(spec, path, replace=replace, make_default=make_default)
    if store_password is not None:
        _store_password(name, store_password)
    if app.json:
        from mailtool.cli.render import print_json

        print_json({"config": str(path), "account": describe(config, name)})
    else:
        from mailtool.cli.render import note

        note(f"account {name!r} written to {path}", quiet=app.quiet)
    if test_after:
        _run_tests(app, name)


def _ask(
    app: AppContext, name: str, from_: str | None, user: str | None,
    password_command: str | None, make_default: bool,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], str | None, bool, bool]:
    """The interactive dialogue of ``account add`` (on a terminal)."""
    from mailtool.endpoint import split_host_port

    click.echo(f"New account {name!r}. Leave a server empty to skip that service.", err=True)
    address = from_ or click.prompt("Your address (From)", default="", show_default=False,
                                    err=True)
    settings: dict[str, Any] = {"from": address} if address else {}
    login_default = user or _bare_address(address) or None
    services: dict[str, dict[str, Any]] = {}
    for service in ("smtp", "imap", "pop3"):
        host_text = click.prompt(
            f"{service.upper()} server ({_WHAT[service]})", default="", show_default=False,
            err=True,
        ).strip()
        if not host_text:
            continue
        host, port = split_host_port(host_text)
        tls = click.prompt(
            "  TLS", type=click.Choice(["implicit", "starttls", "none"]),
            default=_tls_for_port(service, port), err=True,
        )
        plain, implicit = _PORTS[service]
        port = click.prompt(
            "  Port", type=click.IntRange(1, 65535),
            default=port or (implicit if tls == "implicit" else plain), err=True,
        )
        login = click.prompt("  User", default=login_default or "", show_default=bool(
            login_default), err=True).strip()
        table: dict[str, Any] = {"host": host, "port": port, "tls": tls}
        if login:
            table["user"] = login
            login_default = login
        services[service] = table
    if not services:
        raise UsageError("no server given: nothing to add")
    password: str | None = None
    if password_command:
        for table in services.values():
            table["password_command"] = password_command
    elif _keyring_has(name) is None:
        click.echo("No keyring backend here: give a command that prints the password.", err=True)
    elif click.confirm("Store the password in the system keyring now?", default=True, err=True):
        password = click.prompt("  Password", hide_input=True, confirmation_prompt=True,
                                err=True)
    if password is None and not password_command:
        command_text = click.prompt(
            "Password command (e.g. 'pass show mail/NAME'; empty for none)", default="",
            show_default=False, err=True,
        ).strip()
        if command_text:
            for table in services.values():
                table["password_command"] = command_text
    config = app.config()
    if not make_default and config.accounts:
        make_default = click.confirm("Make it the default account?", default=False, err=True)
    test_after = click.confirm("Test the connection now?", default=False, err=True)
    return settings, services, password, make_default, test_after


def _tls_for_port(service: str, port: int | None) -> str:
    if port is None:
        return _FIRST_TLS[service]
    _plain, implicit = _PORTS[service]
    return "implicit" if port == implicit else "starttls"


def _bare_address(text: str) -> str:
    from email.utils import parseaddr

    return parseaddr(text)[1] if text else ""


# --- list / show ---------------------------------------------------------------------


@command.command("list")
@output_options
def list_(app: AppContext) -> None:
    """List the configured accounts (the default one is marked with *).

    --json prints {"config": PATH, "default": NAME|null, "accounts": [ACCOUNT...]},
    each ACCOUNT as 'account show --json' prints it.

    \b
    Examples:
      mailtool account list
      mailtool account list --json | jq -r '.accounts[].name'
    """
    from mailtool.accounts import describe, effective_default

    config = app.config()
    names = list(config.accounts)
    if app.json:
        from mailtool.cli.render import print_json

        print_json({
            "config": str(config.path or _config_path(app)),
            "default": effective_default(config),
            "accounts": [describe(config, n) for n in names],
        })
        return
    if not names:
        from mailtool.cli.render import note

        note(f"no accounts in {_config_path(app)}; add one with 'mailtool account add NAME'",
             quiet=app.quiet)
        return
    default = effective_default(config)
    width = max(len(n) for n in names)
    for name in names:
        info = describe(config, name)
        servers = " ".join(
            f"{svc}={s['host']}" + (f":{s['port']}" if s["port"] else "")
            for svc, s in info["services"].items()
        )
        mark = "*" if name == default else " "
        line = f"{mark} {name:<{width}}  {servers}"
        click.echo(_escape(line))


def _escape(text: str) -> str:
    """Control characters from a (hand-edited) config are shown, never sent to the terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


@command.command("show")
@click.argument("name", required=False, shell_complete=complete_accounts)
@output_options
def show(app: AppContext, name: str | None) -> None:
    """Show an account's settings (passwords never; only where they come from).

    NAME defaults to --account or the default account. --json prints {"name", "default",
    "from", "settings", "services": {SERVICE: {"host", "port", "tls", "user", "auth",
    "password_command", "ca_file", "insecure", "extra"}}, "keyring"}; "keyring" is
    true/false for a stored password, or null when no keyring backend is available.

    \b
    Examples:
      mailtool account show work
      mailtool --account work account show --json
    """
    from mailtool.accounts import describe

    name = _name_or_default(app, name)
    _known(app, name)
    info = describe(app.config(), name)
    info["keyring"] = _keyring_has(name)
    if app.json:
        from mailtool.cli.render import print_json

        print_json(info)
        return
    lines = [f"account {name}" + (" (default)" if info["default"] else "")]
    if info["from"]:
        lines.append(f"  from:     {info['from']}")
    for key, value in info["settings"].items():
        lines.append(f"  {key}: {value}")
    for service, section in info["services"].items():
        where = section["host"] + (f":{section['port']}" if section["port"] else "")
        facts = [where, f"tls={section['tls'] or 'by port'}"]
        if section["user"]:
            facts.append(f"user={section['user']}")
        if section["auth"]:
            facts.append(f"auth={section['auth']}")
        lines.append(f"  {service + ':':9} " + " ".join(facts))
        if section["password_command"]:
            lines.append(f"            password_command: {section['password_command']}")
        if section["ca_file"]:
            lines.append(f"            ca_file: {section['ca_file']}")
        if section["insecure"]:
            lines.append("            insecure: certificates are NOT verified")
        for key, value in section["extra"].items():
            lines.append(f"            {key}: {value}")
    keyring_text = {True: "stored", False: "none", None: "no keyring backend"}[info["keyring"]]
    lines.append(f"  password: keyring: {keyring_text}")
    for line in lines:
        click.echo(_escape(line))


def _keyring_has(name: str) -> bool | None:
    """Whether the keyring holds a password for ``name`` (None: no usable backend)."""
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        return None
    try:
        return keyring.get_password(_service(), name) is not None
    except (KeyringError, RuntimeError, OSError):
        return None


def _service() -> str:
    from mailtool.secrets import KEYRING_SERVICE

    return KEYRING_SERVICE


# --- set-password --------------------------------------------------------------------


@command.command("set-password")
@click.argument("name", required=False, shell_complete=complete_accounts)
@click.option("--delete", is_flag=True, help="Remove the stored password instead.")
@output_options
def set_password(app: AppContext, name: str | None, delete: bool) -> None:
    """Store an account's password in the system keyring.

    Asks twice on a terminal; otherwise reads the first line of stdin. On machines
    without a keyring (servers, containers) set password_command in the account instead.

    \b
    Examples:
      mailtool account set-password work
      pass show mail/work | mailtool account set-password work
      mailtool account set-password work --delete
    """
    name = _name_or_default(app, name)
    _known(app, name)
    if delete:
        _delete_password(name, missing_ok=False)
        from mailtool.cli.render import note

        note(f"password of {name!r} removed from the keyring", quiet=app.quiet)
        return
    if sys.stdin.isatty():
        password = click.prompt(f"Password for {name}", hide_input=True,
                                confirmation_prompt=True, err=True)
    else:
        # One line, bounded: a password is not a file.
        password = sys.stdin.readline(4096).rstrip("\r\n")
    if not password:
        raise UsageError("empty password: nothing stored")
    _store_password(name, password)
    from mailtool.cli.render import note

    note(f"password of {name!r} stored in the keyring", quiet=app.quiet)


def _no_keyring(exc: BaseException | None = None) -> ConfigError:
    why = f" ({exc.__class__.__name__})" if exc else ""
    return ConfigError(
        f"no usable keyring backend{why}; set password_command in the account instead"
        " (e.g. 'pass show mail/NAME'), or export MAILTOOL_PASSWORD",
        step="keyring",
    )


def _store_password(name: str, password: str) -> None:
    """Raises: ConfigError pointing at password_command when there is no keyring."""
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError as exc:
        raise _no_keyring(exc) from None
    try:
        keyring.set_password(_service(), name, password)
    except (KeyringError, RuntimeError, OSError) as exc:
        raise _no_keyring(exc) from None


def _delete_password(name: str, *, missing_ok: bool) -> bool:
    try:
        import keyring
        from keyring.errors import KeyringError, PasswordDeleteError
    except ImportError as exc:
        if missing_ok:
            return False
        raise _no_keyring(exc) from None
    try:
        keyring.delete_password(_service(), name)
    except PasswordDeleteError:
        if missing_ok:
            return False
        raise ConfigError(f"no password stored for {name!r}", step="keyring") from None
    except (KeyringError, RuntimeError, OSError) as exc:
        if missing_ok:
            return False
        raise _no_keyring(exc) from None
    return True


# --- remove --------------------------------------------------------------------------


@command.command("remove")
@click.argument("name", shell_complete=complete_accounts)
@click.option("--keep-password", is_flag=True, help="Leave the keyring entry in place.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@output_options
def remove(app: AppContext, name: str, keep_password: bool, yes: bool) -> None:
    """Remove an account's tables from the config (the rest of the file is kept).

    Also forgets its keyring password unless --keep-password. Asks first on a terminal.

    \b
    Examples:
      mailtool account remove old-job
      mailtool account remove old-job --yes --keep-password
    """
    from mailtool.accounts import remove_account

    _known(app, name)
    if not yes and sys.stdin.isatty() and not click.confirm(
        f"Remove account {name!r} from {_config_path(app)}?", default=False, err=True
    ):
        raise click.Abort()
    _config, was_default = remove_account(name, _config_path(app))
    forgot = False if keep_password else _delete_password(name, missing_ok=True)
    if app.json:
        from mailtool.cli.render import print_json

        print_json({"removed": name, "was_default": was_default, "password_removed": forgot})
        return
    from mailtool.cli.render import note

    note(f"account {name!r} removed" + (" (it was the default)" if was_default else ""),
         quiet=app.quiet)


# --- default -------------------------------------------------------------------------


@command.command("default")
@click.argument("name", shell_complete=complete_accounts)
@output_options
def default(app: AppContext, name: str) -> None:
    """Make NAME the default account (sets default_account in the config).

    \b
    Example:
      mailtool account default work
    """
    from mailtool.accounts import set_default

    set_default(name, _config_path(app))
    from mailtool.cli.render import note

    note(f"default account is now {name!r}", quiet=app.quiet)


# --- test ----------------------------------------------------------------------------


@command.command("test")
@click.argument("name", required=False, shell_complete=complete_accounts)
@output_options
def test(app: AppContext, name: str | None) -> None:
    """Connect to each of the account's servers and log in.

    Exits 0 when every service works, else with the worst failure's code (75 retry
    later, 77 login refused, 69 TLS/certificate problem, ...). --json prints
    {"account": NAME, "ok": BOOL, "services": [{"service", "host", "port", "tls", "ok",
    "detail", "error", "exit_code"}]}.

    \b
    Examples:
      mailtool account test work
      mailtool -v account test work    # with the transcript, passwords redacted
    """
    name = _name_or_default(app, name)
    _known(app, name)
    _run_tests(app, name)


def _run_tests(app: AppContext, name: str) -> None:
    from mailtool.account_check import check_account
    from mailtool.exitcodes import worst

    results = check_account(app.config().accounts[name], timeout=app.timeout,
                            transcript=app.transcript())
    ok = all(r.ok for r in results)
    if app.json:
        from mailtool.cli.render import print_json

        print_json({"account": name, "ok": ok, "services": [r.to_dict() for r in results]})
    elif not app.quiet or not ok:
        for r in results:
            mark = "ok  " if r.ok else "FAIL"
            line = f"{mark} {r.service:5} {r.host}:{r.port} ({r.tls}) {r.detail or r.error}"
            click.echo(_escape(line), err=not r.ok and app.quiet)
    if not ok:
        code = worst(*(r.exit_code for r in results))
        raise click.exceptions.Exit(int(code))
