"""TLS policy as plain data; ``transport`` turns it into an ``ssl.SSLContext``."""

from __future__ import annotations

import enum

from mailtool.record import record

# Not ``typing.TYPE_CHECKING``: this module is on every connection's start-up path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime as _dt


class TLSMode(enum.Enum):
    """How a connection is protected."""

    IMPLICIT = "implicit"  # TLS from the first byte (465, 993, 995)
    STARTTLS = "starttls"  # upgrade required; fail if the server does not offer it
    OPPORTUNISTIC = "opportunistic"  # MX delivery on port 25: upgrade when offered
    NONE = "none"  # cleartext, an explicit choice

    @classmethod
    def for_port(cls, port: int, implicit_ports: tuple[int, ...] = (465, 993, 995)) -> TLSMode:
        """The default mode for a port: implicit TLS on the implicit-TLS ports, else STARTTLS."""
        return cls.IMPLICIT if port in implicit_ports else cls.STARTTLS


@record(frozen=True)
class TLSSettings:
    """Certificate policy: verified by default; ``insecure`` skips checks (loudly)."""

    ca_file: str | None = None
    insecure: bool = False
    server_hostname: str | None = None  # name to verify, when it differs from the host


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@record(frozen=True)
class TLSInfo:
    """Facts about an established TLS session, for transcripts and diagnose."""

    version: str
    cipher: str
    bits: int | None
    verified: bool
    subject: str | None = None
    issuer: str | None = None
    expires: str | None = None  # the certificate's notAfter as the ssl module gives it
    alt_names: tuple[str, ...] = ()

    # Dates are worked out only when asked (transcripts under -v, diagnose): parsing one
    # loads _strptime, calendar and datetime, several ms of every connection otherwise.
    @property
    def not_after(self) -> str | None:
        """Expiry as ISO 8601 UTC (``2027-06-01T12:00:00+00:00``), None if unknown."""
        when = self._expiry()
        return when.isoformat() if when is not None else None

    @property
    def days_left(self) -> int | None:
        """Whole days until the certificate expires (negative once expired)."""
        import datetime as _dt

        when = self._expiry()
        return (when - _dt.datetime.now(_dt.UTC)).days if when is not None else None

    def _expiry(self) -> _dt.datetime | None:
        # OpenSSL's form, always GMT: "Jun  1 12:00:00 2027 GMT" (what ssl.getpeercert gives).
        import datetime as _dt

        try:
            month, day, clock, year, zone = (self.expires or "").split()
            hour, minute, second = (int(x) for x in clock.split(":"))
            if zone != "GMT":
                return None
            return _dt.datetime(int(year), _MONTHS.index(month) + 1, int(day), hour, minute,
                                second, tzinfo=_dt.UTC)
        except ValueError:
            return None

    def summary(self) -> str:
        cert = f", cert {self.subject}" if self.subject else ""
        checked = "verified" if self.verified else "NOT verified"
        return f"{self.version} {self.cipher} ({checked}{cert})"


def must_upgrade(
    mode: TLSMode, offered: bool, *, host: str, command: str, implicit_port: int
) -> bool:
    """Decide, once the server's capabilities are known, whether to upgrade in-band now.

    The one place all three clients take this decision, so that none of them can slide
    back to cleartext when TLS is required (STARTTLS stripping: OfflineIMAP
    CVE-2020-37248, curl CVE-2021-22946).

    Args:
        offered: the server advertises ``command`` (STARTTLS or STLS).
        implicit_port: named in the hint when the upgrade is missing.

    Returns:
        True to upgrade now; False to stay as we are (implicit TLS already, ``none``, or
        opportunistic with nothing offered).

    Raises:
        TLSError: TLS is required and the server does not offer the upgrade.
    """
    from mailtool.errors import TLSError

    if mode in (TLSMode.IMPLICIT, TLSMode.NONE):
        return False
    if offered:
        return True
    if mode is TLSMode.OPPORTUNISTIC:
        return False
    raise TLSError(
        f"{host} does not offer {command} and TLS is required",
        step=command,
        hint=f"use --tls implicit (port {implicit_port}), or --tls none for cleartext",
    )
