"""Where to connect and how: command-line words merged over an account's service section.

Shared by every command that talks to a server (send, pop-fetch, imap-*, diagnose, account
test), so "--host/--port/--tls/--user/--insecure/--ca-file" mean the same thing everywhere.
"""

from __future__ import annotations

from mailtool.config import ServiceConfig, refuse_inline_password
from mailtool.errors import AuthError, ConfigError, UsageError
from mailtool.protocol.tls import TLSMode, TLSSettings
from mailtool.record import record, replace

# Not ``typing.TYPE_CHECKING``: sasl (base64) and secrets are imported only for a login,
# ipaddress only to tell whether a host is loopback.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from mailtool.protocol.sasl import Credentials

#: (STARTTLS/cleartext port, implicit-TLS port) per service.
DEFAULT_PORTS = {
    "smtp": (587, 465),
    "pop3": (110, 995),
    "imap": (143, 993),
}
IMPLICIT_PORTS = (465, 993, 995)


@record(frozen=True)
class ConnectionOptions:
    """The shared connection words as given on the command line (None = not given)."""

    host: str | None = None
    port: int | None = None
    tls: str | None = None
    user: str | None = None
    auth: str | None = None
    insecure: bool = False
    ca_file: str | None = None
    allow_plaintext_auth: bool = False


@record(frozen=True)
class Endpoint:
    """A fully resolved server: every field decided."""

    service: str
    host: str
    port: int
    tls_mode: TLSMode
    tls: TLSSettings
    user: str | None
    auth: str | None
    password_command: str | None
    account: str | None
    allow_plaintext_auth: bool = False

    def label(self) -> str:
        return f"{self.service}://{self.host}:{self.port}"

    def with_tls_mode(self, mode: TLSMode) -> Endpoint:
        return replace(self, tls_mode=mode)


def split_host_port(value: str, default_port: int | None = None) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port).

    Raises:
        UsageError: the port is not a number in range.
    """
    host, port_text = value, ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise UsageError(f"bad address {value!r}: missing ']'")
        host, rest = value[1:end], value[end + 1 :]
        if rest.startswith(":"):
            port_text = rest[1:]
    elif value.count(":") == 1:
        host, port_text = value.split(":", 1)
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"bad port in {value!r}")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_endpoint(
    service: str,
    opts: ConnectionOptions,
    section: ServiceConfig | None,
    *,
    account: str | None = None,
) -> Endpoint:
    """Merge command-line options over the account section and fill in defaults.

    Raises:
        ConfigError: no host anywhere.
    """
    section = section or ServiceConfig(service=service)
    refuse_inline_password(section, account)
    host = opts.host or section.host
    port = opts.port
    if host and opts.host:
        host, port_from_host = split_host_port(host)
        port = port or port_from_host
    if not host:
        raise ConfigError(
            f"no {service} server: give --host or configure [accounts.NAME.{service}] host",
            step="configuration",
        )
    port = port or section.port
    tls_word = opts.tls or section.tls
    plain_port, implicit_port = DEFAULT_PORTS.get(service, (0, 0))
    if tls_word is None:
        mode = TLSMode.for_port(port) if port else TLSMode.STARTTLS
    else:
        mode = TLSMode(tls_word)
    if port is None:
        port = implicit_port if mode is TLSMode.IMPLICIT else plain_port
    tls = TLSSettings(
        ca_file=opts.ca_file or section.ca_file, insecure=opts.insecure or section.insecure
    )
    return Endpoint(
        service=service,
        host=host,
        port=port,
        tls_mode=mode,
        tls=tls,
        user=opts.user or section.user,
        auth=opts.auth or section.auth,
        password_command=section.password_command,
        account=account,
        allow_plaintext_auth=opts.allow_plaintext_auth,
    )


def check_plaintext_auth(endpoint: Endpoint, tls_active: bool) -> None:
    """Refuse to send a password in cleartext to anything but loopback unless allowed.

    Called by every client right before it authenticates, on every path.
    """
    if tls_active or endpoint.allow_plaintext_auth or is_loopback(endpoint.host):
        return
    raise AuthError(
        f"refusing to send a password to {endpoint.host} without TLS",
        step="AUTH",
        hint="use TLS, or --allow-plaintext-auth if you really mean it",
    )


def credentials(endpoint: Endpoint) -> Credentials:
    """Look up the password (or OAuth token) for ``endpoint``'s user.

    A ``password_command`` whose mechanism is XOAUTH2/OAUTHBEARER yields a token.
    """
    from mailtool.protocol.sasl import Credentials
    from mailtool.secrets import require_password

    if not endpoint.user:
        raise ConfigError(
            f"no user name for {endpoint.label()}: give --user or set user in the account",
            step="AUTH",
        )
    secret = require_password(
        endpoint.account,
        password_command=endpoint.password_command,
        prompt=f"Password for {endpoint.user} at {endpoint.host}: ",
    )
    if endpoint.auth and endpoint.auth.upper() in ("XOAUTH2", "OAUTHBEARER"):
        return Credentials(user=endpoint.user, token=secret)
    return Credentials(user=endpoint.user, password=secret)
