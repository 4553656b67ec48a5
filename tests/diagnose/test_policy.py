"""Pure checks: SPF syntax and lookup counting, DMARC, MTA-STS policy, the report's exit code."""

from __future__ import annotations

import pytest

from mailtool.diagnose.findings import Finding, Report, Section, Status
from mailtool.diagnose.policy import (
    DNSLookupError,
    check_dmarc,
    check_mta_sts,
    check_spf,
    check_spf_record,
    check_tlsrpt,
    parse_sts_policy,
    sts_matches,
)
from mailtool.exitcodes import ExitCode


def fake(zone: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def lookup(name: str) -> list[str] | None:
        if name == "broken.example":
            raise DNSLookupError("SERVFAIL")
        return zone.get(name)

    return lookup


def test_spf_ok_counts_lookups_through_includes() -> None:
    zone = {
        "ex.test": ["some other txt", "v=spf1 mx a include:_spf.ex.test ip4:192.0.2.0/24 -all"],
        "_spf.ex.test": ["v=spf1 include:_a.ex.test ~all"],
        "_a.ex.test": ["v=spf1 ip6:2001:db8::/32 exists:%{i}.x.ex.test -all"],
    }
    res = check_spf_record("ex.test", fake(zone))
    assert res.errors == [] and res.all_qualifier == "-"
    assert res.lookups == 5  # mx, a, include, include, exists
    f = check_spf("ex.test", fake(zone))
    assert f.status is Status.OK and "5/10" in f.detail and "-all" in f.detail


def test_spf_over_ten_lookups_is_a_failure() -> None:
    terms = " ".join(f"include:i{n}.ex.test" for n in range(6))
    zone = {"ex.test": [f"v=spf1 {terms} -all"]}
    for n in range(6):
        zone[f"i{n}.ex.test"] = ["v=spf1 a mx -all"]
    res = check_spf_record("ex.test", fake(zone))
    assert res.lookups > 10  # counting stops a little past the limit
    f = check_spf("ex.test", fake(zone))
    assert f.status is Status.FAILURE and "over the limit of 10" in f.detail
    assert f.exit_code == ExitCode.CONFIG


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ("v=spf1 ip4:999.1.1.1 -all", "bad ip4"),
        ("v=spf1 ip6:192.0.2.1 -all", "bad ip6"),
        ("v=spf1 foo:bar -all", "unknown mechanism"),
        ("v=spf1 include: -all", "needs a domain"),
    ],
)
def test_spf_syntax_errors(record: str, error: str) -> None:
    res = check_spf_record("ex.test", fake({"ex.test": [record]}))
    assert any(error in e for e in res.errors), res.errors


def test_spf_missing_duplicate_loop_and_plus_all() -> None:
    assert check_spf("ex.test", fake({})).status is Status.WARNING
    two = check_spf("ex.test", fake({"ex.test": ["v=spf1 -all", "v=spf1 mx -all"]}))
    assert two.status is Status.FAILURE
    loop = check_spf_record("a.test", fake({"a.test": ["v=spf1 include:b.test -all"],
                                             "b.test": ["v=spf1 include:a.test -all"]}))
    assert any("loop" in e for e in loop.errors)
    plus = check_spf("ex.test", fake({"ex.test": ["v=spf1 +all"]}))
    assert plus.status is Status.WARNING and "+all" in plus.detail
    redirect = check_spf_record("ex.test", fake({"ex.test": ["v=spf1 redirect=r.test"],
                                                 "r.test": ["v=spf1 mx -all"]}))
    assert redirect.lookups == 2 and not redirect.errors


@pytest.mark.parametrize(
    ("records", "status"),
    [
        (None, Status.WARNING),
        (["v=DMARC1; p=reject; rua=mailto:d@ex.test"], Status.OK),
        (["v=DMARC1; p=quarantine"], Status.OK),
        (["v=DMARC1; p=none"], Status.WARNING),
        (["v=DMARC1; rua=mailto:x@y"], Status.FAILURE),
        (["v=DMARC1; p=reject", "v=DMARC1; p=none"], Status.FAILURE),
    ],
)
def test_dmarc(records: list[str] | None, status: Status) -> None:
    zone = {"_dmarc.ex.test": records} if records is not None else {}
    assert check_dmarc("ex.test", fake(zone)).status is status


def test_lookup_errors_are_warnings() -> None:
    assert check_dmarc("broken.example".removeprefix("_dmarc."), fake({})).status in (
        Status.WARNING,
    )
    assert check_spf("broken.example", fake({})).status is Status.WARNING


def test_sts_policy_parse_and_mx_match() -> None:
    policy = parse_sts_policy("version: STSv1\nmode: enforce\nmx: mail.ex.test\n"
                              "mx: *.ex.test\nmax_age: 86400\n")
    assert policy.errors == [] and policy.mode == "enforce" and policy.max_age == 86400
    assert sts_matches("*.ex.test", "mx1.ex.test")
    assert not sts_matches("*.ex.test", "a.b.ex.test")
    assert not sts_matches("*.ex.test", "ex.test")
    assert parse_sts_policy("version: STSv2\nmode: sometimes\n").errors


def test_mta_sts_checks() -> None:
    zone = {"_mta-sts.ex.test": ["v=STSv1; id=2024"]}
    policy = "version: STSv1\nmode: enforce\nmx: *.ex.test\nmax_age: 604800\n"
    found = check_mta_sts("ex.test", fake(zone), ["mx1.ex.test"], lambda host: policy)
    assert [f.status for f in found] == [Status.OK, Status.OK]
    found = check_mta_sts("ex.test", fake(zone), ["mx.other.test"], lambda host: policy)
    assert found[1].status is Status.FAILURE and "mx.other.test" in found[1].detail

    def unreachable(host: str) -> str:
        raise OSError("connection refused")

    found = check_mta_sts("ex.test", fake(zone), ["mx1.ex.test"], unreachable)
    assert found[1].status is Status.WARNING and "could not fetch" in found[1].detail
    assert check_mta_sts("ex.test", fake({}), [], None)[0].status is Status.INFO


def test_tlsrpt() -> None:
    assert check_tlsrpt("ex.test", fake({})).status is Status.INFO
    ok = {"_smtp._tls.ex.test": ["v=TLSRPTv1; rua=mailto:tls@ex.test"]}
    assert check_tlsrpt("ex.test", fake(ok)).status is Status.OK


def test_report_exit_code() -> None:
    report = Report("x", [Section("a", [Finding("c", "C", Status.OK)])])
    assert report.exit_code() == ExitCode.OK
    report.sections[0].add(Finding("c", "C", Status.INFO))
    assert report.exit_code() == ExitCode.OK
    report.sections[0].add(Finding("c", "C", Status.WARNING))
    assert report.exit_code() == ExitCode.WARNING
    report.sections.append(Section("b", [
        Finding("d", "D", Status.FAILURE, exit_code=ExitCode.TEMPFAIL),
        Finding("e", "E", Status.FAILURE, exit_code=ExitCode.NOUSER),
    ]))
    assert report.exit_code() == ExitCode.NOUSER
    doc = report.to_dict()
    assert doc["counts"] == {"ok": 1, "info": 1, "warning": 1, "failure": 2}
    assert doc["sections"][1]["status"] == "failure"
