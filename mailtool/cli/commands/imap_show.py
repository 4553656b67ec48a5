"""``mailtool imap-show``: one message by UID: readable, raw, its header, or one part."""

from __future__ import annotations

from typing import Any

import click

from mailtool.cli.app import AppContext
from mailtool.cli.complete import complete_folders
from mailtool.cli.options import connection_options, output_options
from mailtool.endpoint import ConnectionOptions


@click.command(
    "imap-show",
    epilog="""\b
Examples:
  mailtool imap-show 4711                        # headers, text, attachments
  mailtool imap-show --folder Archive 12 --raw > msg.eml
  mailtool imap-show 4711 --headers-only
  mailtool imap-show 4711 --part 2 > report.pdf
  mailtool imap-show 4711 --save-attachments ~/Downloads

UIDs are those imap-list shows. The message is read with BODY.PEEK from a folder
opened read-only, so it stays unread unless --mark-seen. Attachment file names are
reduced to a safe last path component; existing files are never overwritten.""",
)
@connection_options
@click.argument("uid", type=click.IntRange(min=1))
@click.option("--folder", default="INBOX", show_default=True, shell_complete=complete_folders,
              help="Folder holding the message.")
@click.option("--raw", is_flag=True, help="The message exactly as stored, streamed to stdout.")
@click.option("--headers-only", is_flag=True, help="Only the header block, as stored.")
@click.option("--part", metavar="N", help="Only body part N (e.g. 2 or 1.2), decoded.")
@click.option("--save-attachments", metavar="DIR", type=click.Path(file_okay=False),
              help="Save each attachment into DIR.")
@click.option("--mark-seen", is_flag=True, help="Set \\Seen on the message.")
@output_options
def command(
    app: AppContext,
    *,
    conn: ConnectionOptions,
    uid: int,
    folder: str,
    raw: bool,
    headers_only: bool,
    part: str | None,
    save_attachments: str | None,
    mark_seen: bool,
) -> int:
    """Show one message (by UID): readable view, raw, headers, one part, or attachments."""
    import re

    from mailtool.endpoint import resolve_endpoint
    from mailtool.errors import UsageError
    from mailtool.imapconn import connect_endpoint

    if sum(bool(x) for x in (raw, headers_only, part, save_attachments)) > 1:
        raise UsageError("give one of --raw, --headers-only, --part, --save-attachments")
    if part is not None and not re.fullmatch(r"[1-9]\d{0,5}(\.[1-9]\d{0,5}){0,20}", part):
        raise UsageError(f"bad part number {part!r}: use 1, 2, 1.2 ...")
    account = app.account()
    section = account.service("imap") if account else None
    endpoint = resolve_endpoint("imap", conn, section, account=account.name if account else None)
    client = connect_endpoint(endpoint, timeout=app.timeout, transcript=app.transcript())
    try:
        if mark_seen:
            client.select(folder)
        else:
            client.examine(folder)
        if raw or headers_only or part:
            _stream(client, uid, raw=raw, headers_only=headers_only, part=part)
        elif save_attachments:
            _save(app, client, uid, save_attachments)
        else:
            _readable(app, client, uid)
        if mark_seen:
            client.uid_store([uid], "+FLAGS.SILENT", ["\\Seen"])
        client.logout()
    finally:
        client.close()
    return 0


def _stream(client: Any, uid: int, *, raw: bool, headers_only: bool, part: str | None) -> None:
    import sys

    from mailtool.imap_view import fetch_summary, stream_section

    out = sys.stdout.buffer
    if raw:
        stream_section(client, uid, "", out.write)
    elif headers_only:
        stream_section(client, uid, "HEADER", out.write)
    else:
        assert part is not None
        summary = fetch_summary(client, uid, header=False)
        node = _find_part(summary.bodystructure, part)
        stream_section(client, uid, part, out.write, encoding=node.encoding if node else None)
    out.flush()


def _find_part(bs: Any, part_id: str) -> Any:
    from mailtool.errors import UsageError

    if bs is None:
        return None
    for node in bs.walk():
        if node.part_id == part_id and not node.is_multipart:
            return node
    raise UsageError(f"the message has no part {part_id} (see the part list of imap-show)")


def _save(app: AppContext, client: Any, uid: int, directory: str) -> None:
    from pathlib import Path

    from mailtool.cli.render import note, print_json
    from mailtool.imap_view import attachments, fetch_summary, save_part, text_part

    summary = fetch_summary(client, uid, header=False)
    bs = summary.bodystructure
    parts = attachments(bs, text_part(bs)) if bs is not None else []
    saved = [(p, save_part(client, uid, p, Path(directory).expanduser())) for p in parts]
    if app.json:
        print_json({"uid": uid, "saved": [
            {"part": p.part_id, "type": p.mime_type, "path": str(path)} for p, path in saved]})
        return
    for p, path in saved:
        note(f"part {p.part_id} ({p.mime_type}) saved to {path}", quiet=app.quiet)
    if not saved:
        note("the message has no attachments", quiet=app.quiet)


def _readable(app: AppContext, client: Any, uid: int) -> None:
    from email.parser import BytesHeaderParser
    from email.policy import default

    from mailtool.cli.render import print_json
    from mailtool.imap_view import attachments, fetch_summary, fetch_text, part_filename, text_part
    from mailtool.protocol.replies import decode_server_text

    summary = fetch_summary(client, uid)
    header = summary.body("HEADER")
    msg = BytesHeaderParser(policy=default).parsebytes(header if isinstance(header, bytes) else b"")
    bs = summary.bodystructure
    shown = text_part(bs) if bs is not None else None
    text = fetch_text(client, uid, shown) if shown is not None else ""
    others = attachments(bs, shown) if bs is not None else []
    fields = {}
    for name in ("From", "To", "Cc", "Date", "Subject"):
        value = msg.get(name)
        if value is not None:
            try:
                fields[name] = str(value)
            except (ValueError, LookupError):
                fields[name] = decode_server_text(msg.get_all(name, [""])[0])
    parts = [{"part": p.part_id, "type": p.mime_type, "size": p.size,
              "filename": part_filename(p)} for p in others]
    if app.json:
        print_json({"uid": uid, "flags": list(summary.flags or ()), "size": summary.size,
                    "headers": fields, "text": text, "attachments": parts})
        return
    if app.quiet:
        return
    for name, value in fields.items():
        click.echo(f"{name}: {decode_server_text(value)}")
    click.echo("")
    click.echo(_printable_body(text), nl=not text.endswith("\n"))
    if parts:
        click.echo("")
        click.echo("Attachments:")
        for item in parts:
            label = decode_server_text(str(item["filename"] or "(no name)"))
            click.echo(f"  [{item['part']}] {label}  {item['type']}  {item['size']} bytes")


def _printable_body(text: str) -> str:
    """Keep tabs and line ends; escape other control characters (terminal injection)."""
    import re

    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]",
                  lambda m: f"\\x{ord(m.group()):02x}", text.replace("\r\n", "\n"))
