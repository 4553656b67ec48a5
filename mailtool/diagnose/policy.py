"""Mail policy records in DNS: SPF (RFC 7208), DMARC (RFC 7489), MTA-STS (RFC 8461),
TLS-RPT (RFC 8460) and DANE TLSA presence (RFC 7672).

The parsers are pure (text in, facts out) and tested directly; the ``check_*`` functions
do the DNS look-ups through one resolver (so ``--dns-server`` governs them) and turn the
facts into findings. SPF counts the DNS-querying terms across includes and redirects: more
than 10 is a permanent error for every receiver (RFC 7208 section 4.6.4).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mailtool.diagnose.findings import Finding, Status, Timer
from mailtool.exitcodes import ExitCode
from mailtool.record import field, record

if TYPE_CHECKING:
    import dns.resolver

#: RFC 7208 section 4.6.4: at most 10 terms that cause DNS queries.
SPF_LOOKUP_LIMIT = 10
#: We stop following includes past this depth (a loop or a hostile record).
SPF_MAX_DEPTH = 12

_SPF_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_SPF_LOOKUP_TERMS = {"include", "a", "mx", "ptr", "exists", "redirect"}
_SPF_MODIFIER = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*)=(.*)$")


class DNSLookupError(Exception):
    """A temporary DNS failure (SERVFAIL, timeout, refused)."""


TXTLookup = Callable[[str], list[str] | None]


def txt_lookup(resolver: dns.resolver.Resolver) -> TXTLookup:
    """TXT strings of a name (character-strings joined); None for NXDOMAIN."""
    import dns.exception
    import dns.resolver

    def lookup(name: str) -> list[str] | None:
        try:
            answer = resolver.resolve(name, "TXT", search=False)
        except dns.resolver.NXDOMAIN:
            return None
        except dns.resolver.NoAnswer:
            return []
        except dns.exception.DNSException as exc:
            raise DNSLookupError(f"TXT {name}: {exc.__class__.__name__}") from exc
        out = []
        for rdata in answer:
            out.append(b"".join(rdata.strings).decode("utf-8", "replace"))
        return out

    return lookup


# --- SPF ----------------------------------------------------------------------------------


@record
class SPFResult:
    record: str | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lookups: int = 0
    all_qualifier: str | None = None  # "-", "~", "?", "+" of the top-level "all"


def spf_records(txts: list[str]) -> list[str]:
    return [t for t in txts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]


def parse_spf_terms(record: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """``v=spf1 ...`` -> [(qualifier, name, value)], errors. Modifiers have qualifier "="."""
    terms: list[tuple[str, str, str]] = []
    errors: list[str] = []
    for token in record.split()[1:]:
        mod = _SPF_MODIFIER.match(token)
        if mod and ":" not in mod.group(1):
            terms.append(("=", mod.group(1).lower(), mod.group(2)))
            continue
        qualifier = "+"
        if token[0] in "+-~?":
            qualifier, token = token[0], token[1:]
        name, _sep, value = token.partition(":")
        if "/" in name and name.split("/")[0].lower() in ("a", "mx"):
            name, value = name.split("/")[0], ""
        name = name.lower()
        if name not in _SPF_MECHANISMS:
            errors.append(f"unknown mechanism {token!r}")
            continue
        if name in ("ip4", "ip6"):
            try:
                net = ipaddress.ip_network(value, strict=False)
                if (name == "ip4") != (net.version == 4):
                    raise ValueError
            except ValueError:
                errors.append(f"bad {name} address {value!r}")
        if name in ("include", "exists") and not value:
            errors.append(f"{name} needs a domain")
        terms.append((qualifier, name, value))
    return terms, errors


def check_spf_record(domain: str, lookup: TXTLookup) -> SPFResult:
    """Syntax and lookup count of ``domain``'s SPF policy, following include/redirect."""
    result = SPFResult()
    txts = lookup(domain) or []
    records = spf_records(txts)
    if not records:
        return result
    if len(records) > 1:
        result.record = records[0]
        result.errors.append(f"{len(records)} SPF records (there must be one: permerror)")
        return result
    result.record = records[0]
    seen: set[str] = set()

    def walk(record: str, depth: int, top: bool) -> None:
        terms, errors = parse_spf_terms(record)
        result.errors.extend(errors)
        redirect = None
        for qualifier, name, value in terms:
            if name in _SPF_LOOKUP_TERMS:
                result.lookups += 1
            if top and name == "all":
                result.all_qualifier = qualifier
            if name == "include" and value:
                follow(value, depth)
            if qualifier == "=" and name == "redirect":
                redirect = value
        if redirect and not any(n == "all" for _q, n, _v in terms):
            follow(redirect, depth)

    def follow(target: str, depth: int) -> None:
        if depth >= SPF_MAX_DEPTH or result.lookups > SPF_LOOKUP_LIMIT + 5:
            return
        if target.lower() in seen:
            result.errors.append(f"include loop through {target}")
            return
        seen.add(target.lower())
        if "%" in target:
            return  # macros: expanded per message, cannot be followed here
        try:
            sub = spf_records(lookup(target) or [])
        except DNSLookupError as exc:
            result.warnings.append(f"could not look up {target}: {exc}")
            return
        if len(sub) != 1:
            result.errors.append(f"{target} has {len(sub)} SPF records (permerror)")
            return
        walk(sub[0], depth + 1, False)

    walk(records[0], 0, True)
    if result.lookups > SPF_LOOKUP_LIMIT:
        result.errors.append(
            f"{result.lookups} DNS-querying terms, over the limit of {SPF_LOOKUP_LIMIT} "
            "(permerror at every receiver)"
        )
    if result.all_qualifier == "+":
        result.warnings.append("'+all' lets every host on the internet send as this domain")
    return result


def check_spf(domain: str, lookup: TXTLookup) -> Finding:
    timer = Timer()
    try:
        res = check_spf_record(domain, lookup)
    except DNSLookupError as exc:
        return Finding("spf", "SPF", Status.WARNING, f"lookup failed: {exc}",
                       elapsed_ms=timer.ms, next_step="check the domain's name servers")
    data: dict[str, Any] = {"record": res.record, "lookups": res.lookups}
    if res.record is None:
        return Finding("spf", "SPF", Status.WARNING, f"no SPF record at {domain}",
                       elapsed_ms=timer.ms, data=data,
                       next_step=f'publish TXT "v=spf1 mx -all" (or your senders) at {domain}')
    if res.errors:
        return Finding("spf", "SPF", Status.FAILURE, "; ".join(res.errors), elapsed_ms=timer.ms,
                       reply=res.record, data=data, exit_code=ExitCode.CONFIG,
                       explanation="receivers treat the record as a permanent error "
                                   "(RFC 7208 §4.6): mail may be refused with 5.7.24",
                       next_step="fix the SPF record (flatten includes to stay within 10 "
                                 "lookups)")
    detail = f"{res.lookups}/{SPF_LOOKUP_LIMIT} DNS lookups"
    if res.all_qualifier:
        detail += f", ends in {res.all_qualifier}all"
    if res.warnings:
        return Finding("spf", "SPF", Status.WARNING, detail + "; " + "; ".join(res.warnings),
                       elapsed_ms=timer.ms, reply=res.record, data=data)
    return Finding("spf", "SPF", Status.OK, detail, elapsed_ms=timer.ms, reply=res.record,
                   data=data)


# --- DMARC --------------------------------------------------------------------------------


def parse_tags(record: str) -> dict[str, str]:
    """``k=v; k=v`` -> dict (keys lower-cased, values stripped)."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        if "=" in part:
            key, value = part.split("=", 1)
            tags.setdefault(key.strip().lower(), value.strip())
    return tags


def check_dmarc(domain: str, lookup: TXTLookup) -> Finding:
    timer = Timer()
    name = f"_dmarc.{domain}"
    try:
        txts = lookup(name) or []
    except DNSLookupError as exc:
        return Finding("dmarc", "DMARC", Status.WARNING, f"lookup failed: {exc}",
                       elapsed_ms=timer.ms)
    records = [t for t in txts if t.replace(" ", "").upper().startswith("V=DMARC1")]
    if not records:
        return Finding("dmarc", "DMARC", Status.WARNING, f"no DMARC record at {name}",
                       elapsed_ms=timer.ms,
                       next_step=f'publish TXT "v=DMARC1; p=none; rua=mailto:..." at {name}, '
                                 "then tighten p= once reports look right")
    if len(records) > 1:
        return Finding("dmarc", "DMARC", Status.FAILURE,
                       f"{len(records)} DMARC records: receivers ignore them all",
                       elapsed_ms=timer.ms, reply=records[0], exit_code=ExitCode.CONFIG,
                       next_step=f"keep exactly one DMARC record at {name}")
    tags = parse_tags(records[0])
    policy = tags.get("p", "").lower()
    data = {"policy": policy, "rua": tags.get("rua"), "sp": tags.get("sp")}
    if policy not in ("none", "quarantine", "reject"):
        return Finding("dmarc", "DMARC", Status.FAILURE,
                       f"invalid or missing p= tag ({policy or 'none given'})",
                       elapsed_ms=timer.ms, reply=records[0], data=data,
                       exit_code=ExitCode.CONFIG, next_step="set p=none, quarantine or reject")
    if policy == "none":
        return Finding("dmarc", "DMARC", Status.WARNING, "policy p=none: monitoring only",
                       elapsed_ms=timer.ms, reply=records[0], data=data,
                       next_step="move to p=quarantine or p=reject once reports look clean")
    return Finding("dmarc", "DMARC", Status.OK, f"policy p={policy}", elapsed_ms=timer.ms,
                   reply=records[0], data=data)


# --- MTA-STS and TLS-RPT ------------------------------------------------------------------


@record
class STSPolicy:
    version: str = ""
    mode: str = ""
    mx: list[str] = field(default_factory=list)
    max_age: int | None = None
    errors: list[str] = field(default_factory=list)


def parse_sts_policy(text: str) -> STSPolicy:
    """The policy file of RFC 8461 section 3.2 (``key: value`` lines)."""
    policy = STSPolicy()
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            policy.errors.append(f"bad line {line[:60]!r}")
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "version":
            policy.version = value
        elif key == "mode":
            policy.mode = value.lower()
        elif key == "mx":
            policy.mx.append(value.lower().rstrip("."))
        elif key == "max_age":
            policy.max_age = int(value) if value.isdigit() else None
    if policy.version != "STSv1":
        policy.errors.append("version is not STSv1")
    if policy.mode not in ("enforce", "testing", "none"):
        policy.errors.append(f"bad mode {policy.mode!r}")
    if policy.max_age is None:
        policy.errors.append("max_age missing or not a number")
    if policy.mode in ("enforce", "testing") and not policy.mx:
        policy.errors.append("no mx patterns")
    return policy


def sts_matches(pattern: str, host: str) -> bool:
    """RFC 8461 section 4.1: ``*.example.com`` matches one left-most label only."""
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _dot, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return host == pattern


PolicyFetcher = Callable[[str], str]


def check_mta_sts(domain: str, lookup: TXTLookup, mx_hosts: list[str],
                  fetch: PolicyFetcher | None) -> list[Finding]:
    timer = Timer()
    name = f"_mta-sts.{domain}"
    try:
        txts = lookup(name) or []
    except DNSLookupError as exc:
        return [Finding("mta-sts", "MTA-STS", Status.WARNING, f"lookup failed: {exc}",
                        elapsed_ms=timer.ms)]
    records = [t for t in txts if t.replace(" ", "").startswith("v=STSv1")]
    if not records:
        return [Finding("mta-sts", "MTA-STS", Status.INFO, "not published",
                        elapsed_ms=timer.ms)]
    tags = parse_tags(records[0])
    if len(records) > 1 or not tags.get("id"):
        return [Finding("mta-sts", "MTA-STS", Status.WARNING,
                        "TXT record invalid (one record with v=STSv1 and id= is needed)",
                        elapsed_ms=timer.ms, reply=records[0])]
    found = [Finding("mta-sts", "MTA-STS", Status.OK, f"TXT record id={tags['id']}",
                     elapsed_ms=timer.ms, reply=records[0])]
    if fetch is None:
        return found
    url = f"https://mta-sts.{domain}/.well-known/mta-sts.txt"
    timer = Timer()
    try:
        text = fetch(f"mta-sts.{domain}")
    except Exception as exc:  # any failure to fetch is one finding
        found.append(Finding("mta-sts-policy", "MTA-STS policy", Status.WARNING,
                             f"could not fetch {url}: {exc}", elapsed_ms=timer.ms,
                             next_step="serve the policy over HTTPS with a valid certificate"))
        return found
    policy = parse_sts_policy(text)
    data = {"mode": policy.mode, "mx": policy.mx, "max_age": policy.max_age}
    if policy.errors:
        found.append(Finding("mta-sts-policy", "MTA-STS policy", Status.FAILURE,
                             "; ".join(policy.errors), elapsed_ms=timer.ms, data=data,
                             exit_code=ExitCode.CONFIG, next_step=f"fix {url}"))
        return found
    outside = [h for h in mx_hosts if not any(sts_matches(p, h) for p in policy.mx)]
    if outside and policy.mode != "none":
        status = Status.FAILURE if policy.mode == "enforce" else Status.WARNING
        found.append(Finding("mta-sts-policy", "MTA-STS policy", status,
                             f"mode {policy.mode}, but MX not covered: {', '.join(outside)}",
                             elapsed_ms=timer.ms, data=data,
                             exit_code=ExitCode.UNAVAILABLE,
                             next_step="add the MX hosts to the policy's mx: lines"))
    else:
        found.append(Finding("mta-sts-policy", "MTA-STS policy", Status.OK,
                             f"mode {policy.mode}, max_age {policy.max_age}",
                             elapsed_ms=timer.ms, data=data))
    return found


def check_tlsrpt(domain: str, lookup: TXTLookup) -> Finding:
    timer = Timer()
    name = f"_smtp._tls.{domain}"
    try:
        txts = lookup(name) or []
    except DNSLookupError as exc:
        return Finding("tls-rpt", "TLS-RPT", Status.WARNING, f"lookup failed: {exc}",
                       elapsed_ms=timer.ms)
    records = [t for t in txts if t.replace(" ", "").startswith("v=TLSRPTv1")]
    if not records:
        return Finding("tls-rpt", "TLS-RPT", Status.INFO, "not published", elapsed_ms=timer.ms)
    tags = parse_tags(records[0])
    if not tags.get("rua"):
        return Finding("tls-rpt", "TLS-RPT", Status.WARNING, "record has no rua=",
                       elapsed_ms=timer.ms, reply=records[0])
    return Finding("tls-rpt", "TLS-RPT", Status.OK, f"reports to {tags['rua']}",
                   elapsed_ms=timer.ms, reply=records[0])


def check_tlsa(mx_hosts: list[str], resolver: dns.resolver.Resolver) -> Finding:
    """DANE: presence of ``_25._tcp.<mx>`` TLSA records (DNSSEC validation not checked)."""
    import dns.exception
    import dns.resolver

    timer = Timer()
    present: list[str] = []
    for host in mx_hosts:
        try:
            answer = resolver.resolve(f"_25._tcp.{host}", "TLSA", search=False)
        except dns.exception.DNSException:
            continue
        if len(answer):
            present.append(f"{host} ({len(answer)})")
    if present:
        return Finding("dane", "DANE TLSA", Status.OK, "TLSA for " + ", ".join(present)
                       + " (DNSSEC validation not checked)", elapsed_ms=timer.ms)
    return Finding("dane", "DANE TLSA", Status.INFO, "no TLSA records for the MX hosts",
                   elapsed_ms=timer.ms)
