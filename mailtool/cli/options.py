"""Option sets shared by commands, so the same words mean the same thing everywhere."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from mailtool.cli.context import CONNECTION_PARAMS, AppContext, connection, merge_output

F = TypeVar("F", bound=Callable[..., Any])


def output_options(func: F) -> F:
    """``--json``, ``-v``, ``-q`` on the command too (merged with the global ones).

    The merging is ``context.merge_output``, which the Click-free fast path calls too.

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
        merge_output(app, as_json_local=as_json_local, verbose_local=verbose_local,
                     quiet_local=quiet_local)
        return func(app, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def connection_options(func: F) -> F:
    """``--host --port --tls --user --auth --insecure --ca-file --allow-plaintext-auth``.

    The wrapped function receives ``conn: ConnectionOptions`` instead of the separate words
    (built by ``context.connection``, which the Click-free fast path calls too).
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
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # The same split as the fast path's (``context.CONNECTION_PARAMS``).
        conn = connection(**{name: kwargs.pop(name) for name in CONNECTION_PARAMS})
        return func(*args, conn=conn, **kwargs)

    return wrapper  # type: ignore[return-value]
