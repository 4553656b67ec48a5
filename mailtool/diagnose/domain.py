"""``diagnose DOMAIN``: where the domain's mail goes and whether each step works.

DNS first (MX order, null/implicit MX, each host's addresses, PTR and forward-confirmed
reverse DNS), then the policy records (SPF, DMARC, MTA-STS, TLS-RPT, DANE TLSA), then the
first ``max_mx`` MX hosts probed *concurrently* on a bounded thread pool, so three dead MX
hosts cost about one timeout, not three. A dead MX is a warning when another MX of the
domain accepts connections (mail still flows), a failure when none does.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailtool.diagnose.findings import Finding, Report, Section, Status, Timer
from mailtool.diagnose.policy import (
    DNSLookupError,
    check_dmarc,
    check_mta_sts,
    check_spf,
    check_tlsa,
    check_tlsrpt,
    txt_lookup,
)
from mailtool.diagnose.smtp_probe import SMTPProbeOptions, probe_smtp
from mailtool.exitcodes import ExitCode
from mailtool.record import record

if TYPE_CHECKING:
    import dns.resolver

    from mailtool.mx import DomainRoute

#: Most MX hosts probed at once (each costs one thread and one connection).
MAX_WORKERS = 8
#: Largest MTA-STS policy we read (RFC 8461 section 3.3 says 64 KiB).
MAX_POLICY = 64 * 1024
#: Steps whose failure means "this MX does not take mail at all".
_REACH_CHECKS = ("connect", "greeting", "banner")


@record(frozen=True)
class DomainOptions:
    dns_server: str | None = None
    timeout: float = 30.0
    max_mx: int = 3
    port: int = 25
    rcpt: Sequence[str] = ()
    sender: str = ""
    ca_file: str | None = None
    insecure: bool = False
    fetch_sts: bool = True
    local_name: str | None = None


def _route_finding(route: DomainRoute) -> Finding:
    from mailtool.mx import RouteStatus

    timer_ms = None
    listing = ", ".join(f"{h.preference} {h.name}" for h in route.hosts)
    data = route.to_json()
    if route.status is RouteStatus.OK:
        return Finding("mx", "MX records", Status.OK, listing, elapsed_ms=timer_ms, data=data)
    if route.status is RouteStatus.IMPLICIT:
        return Finding("mx", "MX records", Status.WARNING,
                       f"no MX record: mail goes to the domain's own address ({listing})",
                       data=data, next_step=f"publish an MX record for {route.domain}")
    if route.status is RouteStatus.NULL_MX:
        return Finding("mx", "MX records", Status.FAILURE,
                       "null MX (MX 0 .): the domain accepts no mail (RFC 7505)", data=data,
                       explanation="senders fail at once with 556 5.1.10",
                       next_step="remove the null MX and publish real MX records if the "
                                 "domain should receive mail",
                       exit_code=ExitCode.NOHOST)
    if route.status is RouteStatus.TEMPORARY:
        return Finding("mx", "MX records", Status.FAILURE, route.detail, data=data,
                       next_step="check the domain's name servers (or --dns-server)",
                       exit_code=ExitCode.TEMPFAIL)
    return Finding("mx", "MX records", Status.FAILURE, route.detail, data=data,
                   next_step="check the domain name; publish MX (or A) records",
                   exit_code=ExitCode.NOHOST)


def _reverse_findings(resolver: dns.resolver.Resolver, host: str,
                      addresses: Sequence[str]) -> list[Finding]:
    """PTR of each address, and whether the PTR name resolves back (FCrDNS)."""
    import dns.exception
    import dns.resolver
    import dns.reversename

    from mailtool.mx import host_addresses

    found = []
    for address in addresses:
        timer = Timer()
        try:
            answer = resolver.resolve(dns.reversename.from_address(address), "PTR", search=False)
            names = [r.target.to_text(omit_final_dot=True) for r in answer]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            names = []
        except dns.exception.DNSException as exc:
            found.append(Finding("ptr", f"PTR {address}", Status.WARNING,
                                 f"reverse lookup failed: {exc.__class__.__name__}",
                                 elapsed_ms=timer.ms))
            continue
        if not names:
            found.append(Finding("ptr", f"PTR {address}", Status.WARNING, "no PTR record",
                                 elapsed_ms=timer.ms,
                                 next_step="ask the address's owner for a PTR record naming "
                                           f"{host}; many receivers refuse mail without one"))
            continue
        confirmed = []
        for name in names:
            try:
                back = host_addresses(resolver, name) or ()
            except Exception:  # mx: a temporary error means not confirmed
                back = ()
            if address in back:
                confirmed.append(name)
        if confirmed:
            found.append(Finding("ptr", f"PTR {address}", Status.OK,
                                 f"{', '.join(names)} (forward-confirmed)", elapsed_ms=timer.ms))
        else:
            found.append(Finding("ptr", f"PTR {address}", Status.WARNING,
                                 f"{', '.join(names)} does not resolve back to {address}",
                                 elapsed_ms=timer.ms,
                                 next_step="make the PTR name's A/AAAA record point to "
                                           "this address"))
    return found


def fetch_sts_policy(host: str, *, timeout: float, ca_file: str | None = None) -> str:
    """GET https://HOST/.well-known/mta-sts.txt over the project's transport (bounded)."""
    from mailtool.errors import ConnectionLostError, ProtocolError
    from mailtool.protocol.tls import TLSSettings
    from mailtool.protocol.transport import Transport

    transport = Transport.connect(host, 443, timeout=timeout, tls=TLSSettings(ca_file=ca_file))
    try:
        transport.send(f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\n"
                       "Connection: close\r\nUser-Agent: mailtool\r\n\r\n".encode("ascii"))
        status = transport.readline(1024).decode("latin-1").split()
        if len(status) < 2 or status[1] != "200":
            raise ProtocolError(f"HTTP status {' '.join(status[1:3]) or '?'}")
        while transport.readline(8192).strip():
            pass  # headers (chunked encoding is not expected for a static file)
        body = bytearray()
        try:
            while len(body) < MAX_POLICY:
                body += transport.readline(MAX_POLICY)
        except ConnectionLostError:
            pass
        return body.decode("utf-8", "replace")
    finally:
        transport.close()


def diagnose_domain(domain: str, opts: DomainOptions) -> Report:
    """Run every check for ``domain``; never raises for what it finds."""
    from mailtool.mx import make_resolver, resolve_domain

    total = Timer()
    report = Report(domain)
    resolver = make_resolver(opts.dns_server, timeout=min(opts.timeout, 10.0))
    dns_section = Section("DNS")
    report.sections.append(dns_section)
    timer = Timer()
    route = resolve_domain(domain, resolver=resolver)
    mx_finding = _route_finding(route)
    mx_finding.elapsed_ms = timer.ms
    dns_section.add(mx_finding)
    hosts = list(route.hosts) if route.deliverable else []
    probed = hosts[: max(opts.max_mx, 0)]
    for host in hosts:
        if not host.addresses:
            dns_section.add(Finding("address", f"{host.name}", Status.FAILURE,
                                    "no A/AAAA record: this MX cannot be reached",
                                    next_step=f"publish an address for {host.name}",
                                    exit_code=ExitCode.NOHOST))
        else:
            dns_section.add(Finding("address", host.name, Status.OK,
                                    ", ".join(host.addresses)))
    probe_opts = SMTPProbeOptions(port=opts.port, timeout=opts.timeout, rcpt=opts.rcpt,
                                  sender=opts.sender, ca_file=opts.ca_file,
                                  insecure=opts.insecure, local_name=opts.local_name)
    policy_section = Section("Policy")
    lookup = txt_lookup(resolver)
    mx_names = [h.name for h in hosts]

    def policy_checks() -> None:
        policy_section.add(check_spf(domain, lookup))
        policy_section.add(check_dmarc(domain, lookup))
        fetch = None
        if opts.fetch_sts:
            def fetch(host: str) -> str:
                return fetch_sts_policy(host, timeout=opts.timeout, ca_file=opts.ca_file)
        for f in check_mta_sts(domain, lookup, mx_names, fetch):
            policy_section.add(f)
        policy_section.add(check_tlsrpt(domain, lookup))
        if mx_names:
            policy_section.add(check_tlsa(mx_names, resolver))

    def reverse_checks() -> list[Finding]:
        found: list[Finding] = []
        for host in probed:
            found.extend(_reverse_findings(resolver, host.name, host.addresses))
        return found

    mx_sections = [Section(f"MX {h.preference} {h.name}") for h in probed]
    workers = max(1, min(MAX_WORKERS, len(probed) + 2))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        policy_future = pool.submit(policy_checks)
        reverse_future = pool.submit(reverse_checks)
        futures = [
            pool.submit(probe_smtp, h.name, probe_opts, addresses=list(h.addresses),
                        section=s)
            for h, s in zip(probed, mx_sections, strict=True) if h.addresses
        ]
        for future in futures:
            future.result()
        try:
            policy_future.result()
        except DNSLookupError as exc:
            policy_section.add(Finding("policy", "Policy records", Status.WARNING, str(exc)))
        for f in reverse_future.result():
            dns_section.add(f)
    _downgrade_dead_mx(mx_sections)
    report.sections.extend(s for s in mx_sections if s.findings)
    report.sections.append(policy_section)
    if len(hosts) > len(probed):
        dns_section.add(Finding("mx-probed", "MX probed", Status.INFO,
                                f"probed the first {len(probed)} of {len(hosts)} MX hosts "
                                "(--max-mx)"))
    report.elapsed_ms = total.ms
    return report


def _downgrade_dead_mx(sections: list[Section]) -> None:
    """A dead MX is only a warning while another MX of the domain takes connections."""
    def reachable(section: Section) -> bool:
        return not any(f.status is Status.FAILURE and f.check in _REACH_CHECKS
                       for f in section.findings) and bool(section.findings)

    if not any(reachable(s) for s in sections):
        return
    for section in sections:
        if reachable(section):
            continue
        for f in section.findings:
            if f.status is Status.FAILURE and f.check in _REACH_CHECKS:
                f.status = Status.WARNING
                f.detail += " (another MX accepts connections, so mail still flows)"
