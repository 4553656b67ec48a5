"""What every command gets, built without Click: the application context, the global and
shared options turned into objects.

Both ways of running a command call these functions: the Click path (``app.py``'s root
callback, ``options.py``'s decorators) and the Click-free fast path (``fastparse.py``), so
what ``--json``, ``-v``, ``--account`` or ``--insecure`` do is written once. Nothing here
imports Click, ``typing`` or anything heavy.
"""

from __future__ import annotations

import sys

from mailtool.cli import state
from mailtool.record import field, record

# Not ``typing.TYPE_CHECKING``: importing typing is part of what the fast path saves.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from mailtool.config import Account, Config
    from mailtool.endpoint import ConnectionOptions
    from mailtool.protocol.transcript import Transcript

#: The names ``output_options`` adds to a command (merged with the global ones).
OUTPUT_PARAMS = ("as_json_local", "verbose_local", "quiet_local")
#: The names ``connection_options`` adds to a command (folded into ``ConnectionOptions``).
CONNECTION_PARAMS = ("host", "port", "tls", "user", "auth_mech", "insecure", "ca_file",
                     "allow_plaintext_auth")


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


def root_setup(
    *,
    config_path: Path | None,
    account_name: str | None,
    verbose: int,
    quiet: bool,
    as_json: bool,
    timeout: float,
    invoked: str | None,
) -> AppContext:
    """The root group's global options -> the ``AppContext`` (what its callback does)."""
    state.verbosity = verbose
    state.quiet = quiet
    app = AppContext(
        config_path=config_path,
        account_name=account_name,
        verbose=verbose,
        quiet=quiet,
        json=as_json,
        timeout=timeout,
    )
    # (`account` is exempt: `account add` creates the file and the account.)
    if (config_path is not None or account_name is not None) and invoked != "account":
        # Asked for explicitly: a broken file or an unknown account fails now (exit 78),
        # before any command does half its work.
        app.account()
    if verbose >= 2:
        import logging

        logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)
    return app


def merge_output(app: AppContext, *, as_json_local: bool, verbose_local: int,
                 quiet_local: bool) -> AppContext:
    """A command's own ``--json``/``-v``/``-q`` merged over the global ones."""
    app.json = app.json or as_json_local
    app.verbose = max(app.verbose, verbose_local)
    app.quiet = app.quiet or quiet_local
    state.verbosity = app.verbose
    state.quiet = app.quiet
    return app


def connection(
    *,
    host: str | None,
    port: int | None,
    tls: str | None,
    user: str | None,
    auth_mech: str | None,
    insecure: bool,
    ca_file: str | None,
    allow_plaintext_auth: bool,
) -> ConnectionOptions:
    """The shared connection words -> ``ConnectionOptions`` (warning about ``--insecure``)."""
    from mailtool.endpoint import ConnectionOptions

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
        sys.stderr.write("mailtool: warning: --insecure: certificates are not verified\n")
    return conn


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A command's parsed parameters -> (output words, connection words, the rest)."""
    output = {k: params.pop(k) for k in OUTPUT_PARAMS if k in params}
    conn = {k: params.pop(k) for k in CONNECTION_PARAMS if k in params}
    return output, conn, params
