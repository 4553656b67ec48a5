"""Where a domain's mail goes: MX lookup with dnspython (RFC 5321 section 5.1, RFC 7505).

* MX records sorted by preference, equal preferences shuffled (load spreading, 5.1).
* No MX record (NOERROR, no answer): the domain itself is the mail host, by its A/AAAA
  records (the "implicit MX").
* A null MX (one MX record ``0 .``, RFC 7505): the domain takes no mail; fail at once.
* NXDOMAIN: the domain does not exist.
* SERVFAIL or a timeout: temporary.

The result is a plain dataclass (``DomainRoute``) with the addresses of every host already
resolved through the same resolver, so ``--dns-server`` governs every lookup and callers
(``delivery``, ``diagnose``) never touch DNS themselves. dnspython is imported lazily.
"""

from __future__ import annotations

import enum

from mailtool.errors import UsageError
from mailtool.record import field, record

# Not ``typing.TYPE_CHECKING``: the send path does not import typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import random
    from typing import Any

    import dns.resolver

#: Most MX hosts we try for one domain (RFC 5321 section 5.1 asks for a configurable limit).
MAX_MX_HOSTS = 10


class RouteStatus(enum.Enum):
    OK = "ok"  # MX records found
    IMPLICIT = "implicit"  # no MX: the domain's own A/AAAA
    NULL_MX = "null-mx"  # RFC 7505: the domain accepts no mail
    NXDOMAIN = "nxdomain"  # the domain does not exist
    NO_HOST = "no-host"  # neither MX nor A/AAAA
    TEMPORARY = "temporary"  # DNS failed for now (SERVFAIL, timeout)


@record(frozen=True)
class MXHost:
    """One mail host of a domain with its addresses (A first, then AAAA)."""

    name: str
    preference: int
    addresses: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"host": self.name, "preference": self.preference,
                "addresses": list(self.addresses)}


@record(frozen=True)
class DomainRoute:
    """The outcome of resolving one domain."""

    domain: str
    status: RouteStatus
    hosts: tuple[MXHost, ...] = ()
    detail: str = ""
    lookups: list[str] = field(default_factory=list, compare=False)

    @property
    def deliverable(self) -> bool:
        return self.status in (RouteStatus.OK, RouteStatus.IMPLICIT) and bool(self.hosts)

    def to_json(self) -> dict[str, Any]:
        return {"domain": self.domain, "status": self.status.value, "detail": self.detail,
                "hosts": [h.to_json() for h in self.hosts]}


def parse_dns_server(value: str) -> tuple[str, int]:
    """``IP``, ``IP:PORT``, ``[v6]:PORT`` -> (ip, port).

    Raises:
        UsageError: not an IP address or a bad port.
    """
    import ipaddress

    host, port = value, 53
    if value.startswith("["):
        end = value.find("]")
        host = value[1:end]
        if value[end + 1 : end + 2] == ":":
            port = _port(value[end + 2 :], value)
    elif value.count(":") == 1:
        host, text = value.split(":")
        port = _port(text, value)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--dns-server needs an IP address, not {value!r}") from None
    return host, port


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"bad port in --dns-server {value!r}")
    return int(text)


def make_resolver(dns_server: str | None = None, *, timeout: float = 10.0) -> dns.resolver.Resolver:
    """A resolver: the system one, or only ``dns_server`` (``IP[:PORT]``)."""
    import dns.resolver

    if dns_server:
        ip, port = parse_dns_server(dns_server)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [ip]
        resolver.port = port
    else:
        resolver = dns.resolver.Resolver()
    resolver.lifetime = timeout
    resolver.timeout = min(timeout, 5.0)
    return resolver


class _Temporary(Exception):
    pass


def _query(resolver: dns.resolver.Resolver, name: str, rdtype: str,
           lookups: list[str]) -> list[Any] | None:
    """Answers, [] for NOERROR without data, None for NXDOMAIN; _Temporary otherwise."""
    import dns.exception
    import dns.resolver

    try:
        answer = resolver.resolve(name, rdtype, search=False)
    except dns.resolver.NXDOMAIN:
        lookups.append(f"{name} {rdtype}: NXDOMAIN")
        return None
    except dns.resolver.NoAnswer:
        lookups.append(f"{name} {rdtype}: no records")
        return []
    except dns.resolver.NoNameservers as exc:
        lookups.append(f"{name} {rdtype}: {exc}")
        raise _Temporary(f"no name server answered for {name} {rdtype}") from exc
    except dns.exception.Timeout as exc:
        lookups.append(f"{name} {rdtype}: timeout")
        raise _Temporary(f"DNS timeout for {name} {rdtype}") from exc
    except dns.exception.DNSException as exc:
        lookups.append(f"{name} {rdtype}: {exc}")
        raise _Temporary(f"DNS lookup of {name} {rdtype} failed: {exc}") from exc
    records = list(answer)
    lookups.append(f"{name} {rdtype}: " + ", ".join(r.to_text() for r in records))
    return records


def host_addresses(resolver: dns.resolver.Resolver, name: str,
                   lookups: list[str] | None = None) -> tuple[str, ...] | None:
    """A then AAAA addresses of ``name``; None when the name does not exist."""
    log = lookups if lookups is not None else []
    v4 = _query(resolver, name, "A", log)
    if v4 is None:
        return None
    v6 = _query(resolver, name, "AAAA", log) or []
    return tuple(r.address for r in v4) + tuple(r.address for r in v6)


def order_mx(records: list[tuple[int, str]], rng: random.Random | None = None) -> list[tuple[int, str]]:
    """Sort by preference, shuffling hosts of equal preference (pure; ``rng`` for tests)."""
    if rng is None:
        import random  # here: only MX routing shuffles

        rng = random.Random()
    by_pref: dict[int, list[str]] = {}
    for pref, name in records:
        by_pref.setdefault(pref, []).append(name)
    ordered: list[tuple[int, str]] = []
    for pref in sorted(by_pref):
        names = by_pref[pref]
        rng.shuffle(names)
        ordered.extend((pref, n) for n in names)
    return ordered


def resolve_domain(
    domain: str,
    *,
    resolver: dns.resolver.Resolver | None = None,
    rng: random.Random | None = None,
) -> DomainRoute:
    """Resolve the mail hosts of ``domain`` (never raises for DNS outcomes)."""
    resolver = resolver or make_resolver()
    lookups: list[str] = []
    name = domain.rstrip(".")
    try:
        ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        return DomainRoute(domain, RouteStatus.NXDOMAIN, detail="not a valid domain name")
    try:
        mx = _query(resolver, ascii_name, "MX", lookups)
        if mx is None:
            return DomainRoute(domain, RouteStatus.NXDOMAIN,
                               detail=f"domain {domain} does not exist", lookups=lookups)
        if not mx:
            addrs = host_addresses(resolver, ascii_name, lookups)
            if not addrs:
                return DomainRoute(domain, RouteStatus.NO_HOST,
                                   detail=f"{domain} has no MX and no address",
                                   lookups=lookups)
            return DomainRoute(domain, RouteStatus.IMPLICIT,
                               (MXHost(ascii_name, 0, addrs),),
                               detail="no MX record: using the domain's address",
                               lookups=lookups)
        pairs = [(int(r.preference), r.exchange.to_text(omit_final_dot=True)) for r in mx]
        if any(host in ("", ".") for _p, host in pairs):
            if len(pairs) == 1:
                return DomainRoute(domain, RouteStatus.NULL_MX,
                                   detail=f"{domain} publishes a null MX: it accepts no mail",
                                   lookups=lookups)
            pairs = [(p, h) for p, h in pairs if h not in ("", ".")]
        hosts = []
        for pref, host in order_mx(pairs, rng)[:MAX_MX_HOSTS]:
            try:
                addrs = host_addresses(resolver, host, lookups) or ()
            except _Temporary:
                addrs = ()
            hosts.append(MXHost(host, pref, addrs))
        return DomainRoute(domain, RouteStatus.OK, tuple(hosts), lookups=lookups)
    except _Temporary as exc:
        return DomainRoute(domain, RouteStatus.TEMPORARY, detail=str(exc), lookups=lookups)
