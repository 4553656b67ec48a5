"""Option sets shared by commands, so the same words mean the same thing everywhere."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from mailtool.cli import state
from mailtool.cli.app import AppContext
from mailtool.endpoint import ConnectionOptions

F = TypeVar("F", bound=Callable[..., Any])


def output_options(func: F) -> F:
    """``--json``, ``-v``, ``-q`` on the command too (merged with the global ones).

    The wrapped function receives ``app: AppContext`` as its first argument.
    """

    @click.option("--json", "as_json_local", is_flag=True, help="Machine-readable output.")
    @click.option("-v", "--verbose", "verbose_local", count=True, help="Transcript (-vv: more).")
    @click.option("-q", "--quiet", "quiet_local", is_flag=True, help="Print errors only.")
    @click.pass_context  # type: ignore[arg-type]
    @functools.wraps(func)
    def wrapper(
        ctx: click.Context,
        *args: Any,
        as_json_local: bool,
        verbose_local: int,
        quiet_local: bool,
        **kwargs: Any,
    ) -> Any:
        app = ctx.find_object(AppContext)
        if app is None:  # invoked outside the root group (tests)
            app = AppContext()
            ctx.obj = app
        app.json = app.json or as_json_local
        app.verbose = max(app.verbose, verbose_local)
        app.quiet = app.quiet or quiet_local
        state.verbosity = app.verbose
        state.quiet = app.quiet
        return func(app, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def connection_options(func: F) -> F:
    """``--host --port --tls --user --auth --insecure --ca-file --allow-plaintext-auth``.

    The wrapped function receives ``conn: ConnectionOptions`` instead of the separate words.
    """

    @click.option("--host", metavar="HOST[:PORT]", help="Server (overrides the account).")
    @click.option("--port", type=click.IntRange(1, 65535), help="Server port.")
    @click.option(
        "--tls",
        type=click.Choice(["implicit", "starttls", "none"]),
        help="implicit TLS, STARTTLS (required), or none. Default: by port.",
    )
    @click.option("--user", metavar="NAME", help="Login name.")
    @click.option("--auth", "auth_mech", metavar="MECH", help="Force a SASL mechanism.")
    @click.option("--insecure", is_flag=True, help="Do not verify certificates (dangerous).")
    @click.option(
        "--ca-file", type=click.Path(exists=True, dir_okay=False), help="Trust this CA file."
    )
    @click.option(
        "--allow-plaintext-auth", is_flag=True, help="Allow passwords over cleartext to remote hosts."
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        host: str | None,
        port: int | None,
        tls: str | None,
        user: str | None,
        auth_mech: str | None,
        insecure: bool,
        ca_file: str | None,
        allow_plaintext_auth: bool,
        **kwargs: Any,
    ) -> Any:
        conn = ConnectionOptions(
            host=host,
            port=port,
            tls=tls,
            user=user,
            auth=auth_mech,
            insecure=insecure,
            ca_file=ca_file,
            allow_plaintext_auth=allow_plaintext_auth,
        )
        if insecure:
            click.echo("mailtool: warning: --insecure: certificates are not verified", err=True)
        return func(*args, conn=conn, **kwargs)

    return wrapper  # type: ignore[return-value]
