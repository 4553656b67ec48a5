"""``mailtool diagnose``: find out why mail does not flow, step by step."""

from __future__ import annotations

import sys
import textwrap
from typing import TYPE_CHECKING, Any

import click

from mailtool.cli.app import AppContext
from mailtool.cli.options import output_options
from mailtool.errors import UsageError

if TYPE_CHECKING:
    from mailtool.diagnose.findings import Finding, Report

_MARK = {"ok": "ok", "info": "info", "warning": "WARN", "failure": "FAIL"}
_STYLE = {"ok": "green", "info": "cyan", "warning": "yellow", "failure": "bold red"}
_SMTP_SCHEMES = {"smtp": 25, "submission": 587, "smtps": 465}
_SERVICE_SCHEMES = {"pop3": 110, "pop3s": 995, "imap": 143, "imaps": 993}


@click.command()
@click.argument("target", required=False)
@click.option("--rcpt", "rcpt", multiple=True, metavar="ADDR",
              help="Ask MAIL FROM/RCPT TO for ADDR (then RSET; never DATA). Repeatable.")
@click.option("--from", "sender", default="", metavar="ADDR",
              help="Envelope sender for --rcpt (default: the null sender <>).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port of the MX hosts (default 25).")
@click.option("--max-mx", type=click.IntRange(0, 50), default=3, show_default=True,
              help="Probe the first N MX hosts.")
@click.option("--dns-server", metavar="IP[:PORT]", help="Ask this DNS server only.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False),
              help="Trust this CA file too.")
@click.option("--insecure", is_flag=True, help="Do not verify certificates.")
@click.option("--no-policy-fetch", is_flag=True, help="Do not fetch the MTA-STS policy (HTTPS).")
@click.option("--user", metavar="NAME",
              help="pop3/imap: check a login as NAME (password from MAILTOOL_PASSWORD).")
@output_options
def command(app: AppContext, target: str | None, rcpt: tuple[str, ...], sender: str,
            port: int | None, max_mx: int, dns_server: str | None, ca_file: str | None,
            insecure: bool, no_policy_fetch: bool, user: str | None) -> int:
    """Check a domain's mail path, or one server, and say what to fix.

    TARGET is a DOMAIN (MX, addresses, reverse DNS, SPF, DMARC, MTA-STS, TLS-RPT, DANE,
    and each MX over SMTP) or a server URL: smtp://HOST[:PORT], submission://, smtps://,
    pop3://, pop3s://, imap://, imaps:// (with --user: a login check, nothing else).
    Without TARGET, every service of the account (--account, or the default one) is
    checked, with a login where the account has a password source.

    Exit status: 0 all ok, 1 warnings only, otherwise the worst failure's code
    (75 temporary, 68 no MX, 67 unknown user, 69 permanent, 77 refused...).

    \b
    Examples:
      mailtool diagnose example.org
      mailtool diagnose example.org --rcpt someone@example.org
      mailtool diagnose smtp://mx.example.org --json
      mailtool --account work diagnose
    """
    from mailtool.protocol.tls import TLSMode

    if target is None:
        return _output(app, _diagnose_account(app, ca_file=ca_file, insecure=insecure))

    if "://" in target:
        from mailtool.diagnose.findings import Report, Timer
        from mailtool.diagnose.smtp_probe import SMTPProbeOptions, probe_smtp

        scheme, _sep, rest = target.partition("://")
        scheme = scheme.lower()
        if scheme in _SERVICE_SCHEMES:
            import os

            from mailtool.diagnose.service import ServiceOptions, probe_service
            from mailtool.secrets import ENV_VAR

            host, port_from_url = _split_host(rest.strip("/"), _SERVICE_SCHEMES[scheme])
            timer = Timer()
            report = Report(target)
            report.sections.append(probe_service(scheme.rstrip("s"), host, ServiceOptions(
                port=port or port_from_url, timeout=app.timeout, ca_file=ca_file,
                insecure=insecure, user=user, password=os.environ.get(ENV_VAR),
                tls_mode=TLSMode.IMPLICIT if scheme.endswith("s") else TLSMode.STARTTLS,
            )))
            report.elapsed_ms = timer.ms
            return _output(app, report)
        if scheme not in _SMTP_SCHEMES:
            raise UsageError(f"unsupported scheme {scheme}:// (use smtp, submission, smtps, "
                             "pop3, pop3s, imap or imaps)")
        host, port_from_url = _split_host(rest.strip("/"), _SMTP_SCHEMES[scheme])
        mode = {"smtp": TLSMode.OPPORTUNISTIC, "submission": TLSMode.STARTTLS,
                "smtps": TLSMode.IMPLICIT}[scheme]
        from mailtool.diagnose.findings import Status

        opts = SMTPProbeOptions(
            port=port or port_from_url, timeout=app.timeout, tls_mode=mode, ca_file=ca_file,
            insecure=insecure, rcpt=rcpt, sender=sender,
            starttls_missing=Status.FAILURE if mode is TLSMode.STARTTLS else Status.WARNING,
        )
        timer = Timer()
        report = Report(target)
        report.sections.append(probe_smtp(host, opts))
        report.elapsed_ms = timer.ms
    else:
        from mailtool.diagnose.domain import DomainOptions, diagnose_domain

        domain = target.strip().rstrip(".")
        if not domain or "@" in domain or " " in domain:
            raise UsageError(f"not a domain: {target!r}")
        report = diagnose_domain(domain, DomainOptions(
            dns_server=dns_server, timeout=app.timeout, max_mx=max_mx, port=port or 25,
            rcpt=rcpt, sender=sender, ca_file=ca_file, insecure=insecure,
            fetch_sts=not no_policy_fetch,
        ))
    return _output(app, report)


def _diagnose_account(app: AppContext, *, ca_file: str | None, insecure: bool) -> Report:
    """Probe each configured service of the chosen account (login where a password is found)."""
    from mailtool.diagnose.findings import Report, Status, Timer
    from mailtool.diagnose.service import ServiceOptions, probe_service
    from mailtool.diagnose.smtp_probe import SMTPProbeOptions, probe_smtp
    from mailtool.endpoint import ConnectionOptions, resolve_endpoint
    from mailtool.protocol.tls import TLSMode
    from mailtool.secrets import lookup_password

    account = app.account()
    if account is None:
        raise UsageError("give a TARGET (a domain or a server URL), or choose an account "
                         "with --account NAME")
    if not account.services:
        raise UsageError(f"account {account.name!r} has no smtp, pop3 or imap section")
    overrides = ConnectionOptions(ca_file=ca_file, insecure=insecure)
    timer = Timer()
    report = Report(f"account {account.name}")
    for service in ("smtp", "pop3", "imap"):
        section_cfg = account.service(service)
        if section_cfg is None:
            continue
        ep = resolve_endpoint(service, overrides, section_cfg, account=account.name)
        if service == "smtp":
            required = ep.tls_mode is TLSMode.STARTTLS
            report.sections.append(probe_smtp(ep.host, SMTPProbeOptions(
                port=ep.port, timeout=app.timeout, tls_mode=ep.tls_mode,
                ca_file=ep.tls.ca_file, insecure=ep.tls.insecure,
                starttls_missing=Status.FAILURE if required else Status.WARNING,
            )))
            continue
        password = None
        if ep.user:
            password = lookup_password(account.name, password_command=ep.password_command,
                                       interactive=False).password
        report.sections.append(probe_service(service, ep.host, ServiceOptions(
            port=ep.port, tls_mode=ep.tls_mode, timeout=app.timeout, ca_file=ep.tls.ca_file,
            insecure=ep.tls.insecure, user=ep.user if password else None, password=password,
        )))
    report.elapsed_ms = timer.ms
    return report


def _output(app: AppContext, report: Report) -> int:
    if app.json:
        from mailtool.cli.render import print_json

        print_json(report.to_dict(transcripts=app.verbose > 0))
    elif not app.quiet or report.exit_code() > 1:
        from mailtool.cli.render import use_color

        if use_color(sys.stdout):
            _render_rich(report, verbose=app.verbose)
        else:
            sys.stdout.write(render_plain(report, verbose=app.verbose))
    return int(report.exit_code())


def _split_host(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1:]
    else:
        host, _sep, rest = text.partition(":")
        rest = ":" + rest if _sep else ""
    if rest.startswith(":"):
        if not rest[1:].isdigit():
            raise UsageError(f"bad port in {text!r}")
        return host, int(rest[1:])
    if not host:
        raise UsageError("no host in the URL")
    return host, default_port


def _summary(report: Report) -> str:
    counts = report.to_dict()["counts"]
    return (f"{report.target}: {counts['failure']} failures, {counts['warning']} warnings, "
            f"{counts['ok'] + counts['info']} ok ({report.elapsed_ms / 1000:.1f} s); "
            f"exit {int(report.exit_code())}")


def _finding_lines(f: Finding, width: int) -> list[str]:
    ms = "" if f.elapsed_ms is None else f" [{f.elapsed_ms:.0f} ms]"
    head = f"  {_MARK[f.status.value]:<5} {f.title}: {f.detail}{ms}"
    out = textwrap.wrap(head, width=width, subsequent_indent=" " * 8) or [head]
    for label, value in (("reply", f.reply), ("why", f.explanation), ("next", f.next_step)):
        if value:
            out += textwrap.wrap(value, width=width, initial_indent=f"        {label}: ",
                                 subsequent_indent=" " * 14)
    return out


def render_plain(report: Report, *, verbose: int = 0, width: int = 80) -> str:
    """The human view without colour: sections and findings, wrapped to ``width``."""
    out = [_summary(report)]
    for section in report.sections:
        out.append(f"{section.name} [{_MARK[section.status.value]}]")
        for f in section.findings:
            out += _finding_lines(f, width)
        if verbose and section.transcript:
            out.append("  transcript:")
            out += [f"    {line}" for line in section.transcript]
    return "\n".join(out) + "\n"


def _render_rich(report: Report, *, verbose: int) -> None:
    from rich.text import Text
    from rich.tree import Tree

    from mailtool.cli.render import console

    con: Any = console()
    code = int(report.exit_code())
    tree = Tree(Text(_summary(report), style="bold " + ("green" if code == 0 else
                                                       "yellow" if code == 1 else "red")))
    for section in report.sections:
        branch = tree.add(Text(section.name, style=_STYLE[section.status.value]))
        for f in section.findings:
            line = Text()
            line.append(f"{_MARK[f.status.value]:<5}", style=_STYLE[f.status.value])
            line.append(f" {f.title}", style="bold")
            line.append(f"  {f.detail}")
            if f.elapsed_ms is not None:
                line.append(f"  {f.elapsed_ms:.0f} ms", style="dim")
            node = branch.add(line)
            for label, value in (("reply", f.reply), ("why", f.explanation),
                                 ("next", f.next_step)):
                if value:
                    node.add(Text(f"{label}: {value}", style="dim" if label == "reply" else ""))
        if verbose and section.transcript:
            tr = branch.add(Text("transcript", style="dim"))
            for line_text in section.transcript:
                tr.add(Text(line_text, style="dim"))
    con.print(tree)
